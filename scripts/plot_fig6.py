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

from reproduction.plotting import (
    COLORS,
    FIGURES,
    curves_label,
    mean_band,
    official_legend,
    official_overlay,
    panels,
    save,
)
from reproduction.results import RESULTS, exists, metrics

TRANSFORMER = {
    "a_adamw": ("AdamW", COLORS["adamw"]),
    "a_adamw_wd": ("AdamW + wd 1.5", COLORS["wd"]),
    "a_perp_adamw": ("⊥AdamW", COLORS["perp"]),
}
MLP = {
    "b_adamw": ("AdamW", COLORS["adamw"]),
    "b_perp_adamw": ("⊥AdamW", COLORS["perp"]),
    "b_perp_sgd": ("⊥SGD", COLORS["stablemax"]),
}


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    fig, (a, b, c) = panels(3)
    for ax, runs in ((a, TRANSFORMER), (b, MLP)):
        official = False
        for run, (label, color) in runs.items():
            if not exists("fig6", run, results):
                continue
            df = metrics("fig6", run, results)
            df = df.assign(train=100 * df.train_acc, test=100 * df.test_acc)
            mean_band(ax, df, "epoch", "test", curves_label(label, df), color)
            mean_band(ax, df, "epoch", "train", None, color, ls="--", lw=0.8)
            official |= official_overlay(ax, "fig6", run, "test_acc", results)
        ax.plot([], [], color="k", ls="--", lw=0.8, label="(dashed: train)")
        if official:
            official_legend(ax)
        ax.set(ylim=(-3, 103), xlabel="epoch", ylabel="accuracy (%)")
        ax.legend(loc="center right", bbox_to_anchor=(1, 0.38))
    a.set_title("(a) transformer, subtraction")
    b.set_title("(b) MLP, addition (5 seeds)")

    c.set_title("(c) AdamW + weight decay 1.5")
    if exists("fig6", "a_adamw_wd", results):
        df = metrics("fig6", "a_adamw_wd", results)
        df = df[df.train_loss > 0]  # an exactly-zero loss (Softmax Collapse) has no place on a log axis
        points = c.scatter(df.weight_norm**2, df.train_loss, c=df.epoch, cmap="viridis", s=8)
        c.plot(df.weight_norm**2, df.train_loss, color="0.6", lw=0.5, zorder=0)
        fig.colorbar(points, ax=c, label="epoch")
        c.set(xscale="log", yscale="log")
    c.set(xlabel="squared weight norm ‖θ‖² (L2 penalty / (λ/2))", ylabel="softmax CE (train)")
    c.xaxis.set_minor_formatter(ScalarFormatter())  # the norm spans less than a decade
    save(fig, "fig6", out_dir)
