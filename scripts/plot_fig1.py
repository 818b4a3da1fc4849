"""Fig. 1: modular addition, 40 % train. (a) ⊥AdamW groks within a few hundred epochs without
regularization; (b) StableMax CE groks after a long delay; (c) softmax CE never generalizes.

    python scripts/reproduce.py fig1 && python scripts/figures.py fig1
"""

from __future__ import annotations

from pathlib import Path

from reproduction.plotting import FIGURES, mean_band, official_legend, official_overlay, run_panels, save
from reproduction.results import RESULTS, exists, metrics

TRAIN, TEST = "#7f7f7f", "#d62728"
PANELS = [
    ("a_perp_adamw", "(a) ⊥AdamW, softmax CE (5 seeds)", False),
    ("b_stablemax", "(b) StableMax CE, AdamW", True),
    ("c_softmax", "(c) softmax CE, AdamW", True),
]


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
    fig, present = run_panels("fig1", PANELS, results)
    for ax, run, (log_x,), df in present:
        accuracy_panel(ax, df, log_x)
        if official_overlay(ax, "fig1", run, "test_acc", results):
            official_legend(ax)
        if run == "b_stablemax":  # extra init seeds, same split: thin test curves
            for extra in ("b_stablemax_seed1", "b_stablemax_seed2"):
                if exists("fig1", extra, results):
                    df = metrics("fig1", extra, results)
                    df = df[df.epoch > 0]
                    label = "test, init seeds 1, 2" if extra.endswith("1") else None
                    ax.plot(df.epoch, 100 * df.test_acc, color=TEST, lw=0.7, alpha=0.5, label=label)
        ax.legend(loc="center right" if not log_x else "center left")
    save(fig, "fig1", out_dir)
