"""Fig. 1: modular addition, 40 % train. (a) ⊥AdamW groks within a few hundred epochs without
regularization; (b) StableMax CE groks after a long delay; (c) softmax CE never generalizes.

    python scripts/reproduce.py fig1 && python scripts/figures.py fig1
"""

from __future__ import annotations

from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import FIGURES, mean_band, official_legend, official_overlay, run_panels, save
from reproduction.results import RESULTS, exists, metrics

EXP = experiment("fig1")  # each panel: its run first, then extra init seeds of it (thin test curves)
TRAIN, TEST = "#7f7f7f", "#d62728"


def accuracy_panel(ax, df, log_x: bool) -> None:
    if log_x:
        df = df[df.epoch > 0]  # epoch 0 has no place on a log axis
    df = df.assign(train=100 * df.train_acc, test=100 * df.test_acc)
    mean_band(ax, df, "epoch", "train", "train", TRAIN, ls="--")
    mean_band(ax, df, "epoch", "test", "test", TEST)
    if log_x:
        ax.set_xscale("log")
    ax.set_ylim(-3, 103)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    specs = [(p.series[0].run, p.title, p.log_x, p.series[1:]) for p in EXP.plot.panels]
    fig, present = run_panels(EXP.name, specs, results)
    for ax, run, (log_x, extras), df in present:
        accuracy_panel(ax, df, log_x)
        if official_overlay(ax, EXP.name, run, "test_acc", results):
            official_legend(ax)
        for extra in extras:  # extra init seeds, same split: thin test curves
            if exists(EXP.name, extra.run, results):
                df = metrics(EXP.name, extra.run, results)
                df = df[df.epoch > 0]
                ax.plot(df.epoch, 100 * df.test_acc, color=TEST, lw=0.7, alpha=0.5, label=extra.label)
        ax.legend(loc="center right" if not log_x else "center left")
    save(fig, EXP.name, out_dir)
