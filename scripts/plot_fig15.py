"""Fig. 15: AdamW weight-decay sweep (2, 4, 6, 8) against untuned ⊥AdamW (addition, 40 %, float32
softmax), at lr 0.002 (left) and lr 0.005 (right; the paper's lr is unknown): solid test, dashed
train accuracy."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from grokking.plotting import COLORS, accuracy_curves, panels, save
from grokking.results import exists, metrics

DECAYS = (2, 4, 6, 8)
SWEEPS = {"lr 0.002": "", "lr 0.005": "lr0.005_"}  # panel title -> run-name prefix


def main(results: Path, out_dir: Path) -> None:
    shades = plt.get_cmap("copper_r")([0.3, 0.5, 0.7, 0.9])
    fig, axes = panels(len(SWEEPS), width=4.2)
    for ax, (title, prefix) in zip(axes, SWEEPS.items(), strict=True):
        runs = {f"{prefix}wd{wd}": (f"AdamW, wd {wd}", shade) for wd, shade in zip(DECAYS, shades, strict=True)}
        runs[f"{prefix}perp_adamw"] = ("⊥AdamW, no wd", COLORS["perp"])
        for run, (label, color) in runs.items():
            if not exists("fig15", run, results):
                continue
            accuracy_curves(ax, metrics("fig15", run, results), label, color, lw=1.2)
        ax.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{title}: test (solid), train (dashed)", ylim=(-2, 102))
        ax.legend(loc="center right")
    save(fig, "fig15", out_dir)
