"""Fig. 15: AdamW weight-decay sweep (2, 4, 6, 8) against untuned ⊥AdamW (addition, 40 %, float32
softmax), at lr 0.002 (left) and lr 0.005 (right; the paper's lr is unknown): solid test, dashed
train accuracy. Thin grey lines: the official code's runs of the same settings (test accuracy)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from reproduction.plotting import COLORS, accuracy_curves, curves_label, official_legend, official_overlay, panels, save
from reproduction.results import exists, metrics

DECAYS = (2, 4, 6, 8)
SWEEPS = {"lr 0.002": "", "lr 0.005": "lr0.005_"}  # panel title -> run-name prefix


def main(results: Path, out_dir: Path) -> None:
    shades = plt.get_cmap("copper_r")([0.3, 0.5, 0.7, 0.9])
    fig, axes = panels(len(SWEEPS), width=4.2)
    for ax, (title, prefix) in zip(axes, SWEEPS.items(), strict=True):
        runs = {f"{prefix}wd{wd}": (f"AdamW, wd {wd}", shade) for wd, shade in zip(DECAYS, shades, strict=True)}
        runs[f"{prefix}perp_adamw"] = ("⊥AdamW, no wd", COLORS["perp"])
        official = False
        for run, (label, color) in runs.items():
            if not exists("fig15", run, results):
                continue
            df = metrics("fig15", run, results)
            accuracy_curves(ax, df, curves_label(label, df), color, lw=1.2)
            official |= official_overlay(ax, "fig15", run, "test_acc", results)
        if official:
            official_legend(ax)
        ax.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{title}: test (solid), train (dashed)", ylim=(-2, 102))
        ax.legend(loc="center right")
    save(fig, "fig15", out_dir)
