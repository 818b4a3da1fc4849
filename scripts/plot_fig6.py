"""Fig. 6: ⊥Grad prevents naïve loss minimization and groks without regularization.
(a) transformer, subtraction, 40 %, lr 1e-3: AdamW, AdamW + weight decay 1.5, ⊥AdamW;
(b) MLP, addition, 40 %, 500 epochs (5 init seeds per replicate, mean and min-max band): AdamW, ⊥AdamW,
⊥SGD (StableMax, float64); (c) the weight-decay run of (a): softmax CE against ‖θ‖², log-log,
colored by epoch. Thin grey lines: the official code's runs of the same settings, where committed.

    python scripts/reproduce.py fig6 && python scripts/figures.py fig6
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import ScalarFormatter

from reproduction.manifest import experiment
from reproduction.plotting import (
    FIGURES,
    curves_label,
    mean_band,
    official_legend,
    official_overlay,
    panels,
    save,
    series_of,
)
from reproduction.results import RESULTS, exists, metrics

EXP = experiment("fig6")  # panels (a) and (b): accuracy per run; (c): loss against norm of its one run


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    fig, (a, b, c) = panels(3)
    transformer, mlp, norm = EXP.plot.panels
    for ax, panel in ((a, transformer), (b, mlp)):
        official = False
        for run, (label, color) in series_of(panel).items():
            if not exists(EXP.name, run, results):
                continue
            df = metrics(EXP.name, run, results)
            df = df.assign(train=100 * df.train_acc, test=100 * df.test_acc)
            mean_band(ax, df, "epoch", "test", curves_label(label, df), color)
            mean_band(ax, df, "epoch", "train", None, color, ls="--", lw=0.8)
            official |= official_overlay(ax, EXP.name, run, "test_acc", results)
        ax.plot([], [], color="k", ls="--", lw=0.8, label="(dashed: train)")
        if official:
            official_legend(ax)
        ax.set(ylim=(-3, 103), xlabel="epoch", ylabel="accuracy (%)")
        ax.legend(loc="center right", bbox_to_anchor=(1, 0.38))
    a.set_title(transformer.title)
    b.set_title(mlp.title)

    c.set_title(norm.title)
    if exists(EXP.name, norm.series[0].run, results):
        df = metrics(EXP.name, norm.series[0].run, results)
        df = df[df.train_loss > 0]  # an exactly-zero loss (Softmax Collapse) has no place on a log axis
        points = c.scatter(df.weight_norm**2, df.train_loss, c=df.epoch, cmap="viridis", s=8)
        c.plot(df.weight_norm**2, df.train_loss, color="0.6", lw=0.5, zorder=0)
        fig.colorbar(points, ax=c, label="epoch")
        c.set(xscale="log", yscale="log")
    c.set(xlabel="squared weight norm ‖θ‖² (L2 penalty / (λ/2))", ylabel="softmax CE (train)")
    c.xaxis.set_minor_formatter(ScalarFormatter())  # the norm spans less than a decade
    save(fig, EXP.name, out_dir)
