"""Fig. 2: modular addition with AdamW (lr 5e-4) and the loss in float16 / float32 / float64, at
40 %, 60 % and 70 % train data. Test accuracy rises, then freezes once Softmax Collapse (SC) takes
hold; SC arrives first in the lowest precision.

    python scripts/reproduce.py fig2 --replicates 5 && python scripts/figures.py fig2

Solid: test accuracy (mean over replicates, min-max band); dashed: train accuracy; dotted vertical
line: median over replicates of the SC onset (first of two logged epochs in a row with more than
50 % of the training samples in SC, in the run's own loss dtype), with the replicates' range as a
bar at the top of the panel.
"""

from __future__ import annotations

import statistics
from pathlib import Path

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
from reproduction.results import RESULTS, exists, metrics, onsets

FRACTIONS = (0.4, 0.6, 0.7)
PRECISIONS = ("float16", "float32", "float64")
SC_THRESHOLD = 0.5


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    fig, axes = panels(3)
    official = False
    for ax, frac in zip(axes, FRACTIONS):
        for i, prec in enumerate(PRECISIONS):
            run = f"frac{frac}_{prec}"
            if not exists("fig2", run, results):
                continue
            df = metrics("fig2", run, results)
            df = df[df.epoch > 0].assign(test=100 * df.test_acc, train=100 * df.train_acc)
            color = COLORS[prec]
            mean_band(ax, df, "epoch", "test", curves_label(prec, df), color)
            mean_band(ax, df, "epoch", "train", None, color, ls="--", lw=1)
            official |= official_overlay(ax, "fig2", run, "test_acc", results)
            sc = [e for e in onsets("fig2", run, "sc_fraction", SC_THRESHOLD, results) if e is not None]
            if sc:
                ax.axvline(statistics.median(sc), color=color, ls=":", lw=1.5)
                y = 99 - 3 * i
                ax.plot([min(sc), max(sc)], [y, y], color=color, lw=2.5, alpha=0.7, solid_capstyle="butt")
        ax.set_xscale("log")
        ax.set_ylim(-3, 103)
        ax.set_title(f"{100 * frac:.0f} % train data")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
    axes[0].plot([], [], color="k", ls="--", lw=1, label="train")
    axes[0].plot([], [], color="k", ls=":", lw=1.5, label="SC > 50 %: median onset (bar: range)")
    if official:
        official_legend(axes[0])
    axes[0].legend(loc="center left")
    save(fig, "fig2", out_dir)
