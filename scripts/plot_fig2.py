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

from reproduction.manifest import experiment
from reproduction.plotting import (
    FIGURES,
    color,
    curves_label,
    mean_band,
    official_legend,
    official_overlay,
    panels,
    save,
)
from reproduction.results import RESULTS, exists, metrics, onsets

EXP = experiment("fig2")  # a panel per train fraction, a series per loss dtype
SC_THRESHOLD = 0.5


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    fig, axes = panels(len(EXP.plot.panels))
    official = False
    for ax, panel in zip(axes, EXP.plot.panels, strict=True):
        for i, series in enumerate(panel.series):
            run = series.run
            if not exists(EXP.name, run, results):
                continue
            df = metrics(EXP.name, run, results)
            df = df[df.epoch > 0].assign(test=100 * df.test_acc, train=100 * df.train_acc)
            line = color(series.color)
            mean_band(ax, df, "epoch", "test", curves_label(series.label, df), line)
            mean_band(ax, df, "epoch", "train", None, line, ls="--", lw=1)
            official |= official_overlay(ax, EXP.name, run, "test_acc", results)
            sc = [e for e in onsets(EXP.name, run, "sc_fraction", SC_THRESHOLD, results) if e is not None]
            if sc:
                ax.axvline(statistics.median(sc), color=line, ls=":", lw=1.5)
                y = 99 - 3 * i
                ax.plot([min(sc), max(sc)], [y, y], color=line, lw=2.5, alpha=0.7, solid_capstyle="butt")
        ax.set_xscale("log")
        ax.set_ylim(-3, 103)
        ax.set_title(panel.title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
    axes[0].plot([], [], color="k", ls="--", lw=1, label="train")
    axes[0].plot([], [], color="k", ls=":", lw=1.5, label="SC > 50 %: median onset (bar: range)")
    if official:
        official_legend(axes[0])
    axes[0].legend(loc="center left")
    save(fig, EXP.name, out_dir)
