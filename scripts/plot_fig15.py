"""Fig. 15: AdamW weight-decay sweep (2, 4, 6, 8) against untuned ⊥AdamW (addition, 40 %, float32
softmax), at lr 0.002 (left) and lr 0.005 (right; the paper's lr is unknown): solid test, dashed
train accuracy. Thin grey lines: the official code's runs of the same settings (test accuracy)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from reproduction.manifest import experiment
from reproduction.plotting import accuracy_curves, color, curves_label, official_legend, official_overlay, panels, save
from reproduction.results import exists, metrics

EXP = experiment("fig15")  # a panel per sweep; series without a colour get the decays' copper shades, in order


def main(results: Path, out_dir: Path) -> None:
    shades = plt.get_cmap("copper_r")([0.3, 0.5, 0.7, 0.9])
    fig, axes = panels(len(EXP.plot.panels), width=4.2)
    for ax, panel in zip(axes, EXP.plot.panels, strict=True):
        unshaded = iter(shades)
        runs = {s.run: (s.label, color(s.color) if s.color else next(unshaded)) for s in panel.series}
        official = False
        for run, (label, line) in runs.items():
            if not exists(EXP.name, run, results):
                continue
            df = metrics(EXP.name, run, results)
            accuracy_curves(ax, df, curves_label(label, df), line, lw=1.2)
            official |= official_overlay(ax, EXP.name, run, "test_acc", results)
        if official:
            official_legend(ax)
        title = f"{panel.title}: test (solid), train (dashed)"
        ax.set(xlabel="epoch", ylabel="accuracy (%)", title=title, ylim=(-2, 102))
        ax.legend(loc="center right")
    save(fig, EXP.name, out_dir)
