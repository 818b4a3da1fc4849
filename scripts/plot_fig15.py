"""Fig. 15: AdamW weight-decay sweep (2, 4, 6, 8) against untuned ⊥AdamW (addition, 40 %, lr 0.002,
float32 softmax): test accuracy (left) and train accuracy (right)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from grokking.plotting import COLORS, mean_band, panels, save
from grokking.results import metrics

DECAYS = (2, 4, 6, 8)


def main(results: Path, out_dir: Path) -> None:
    shades = plt.get_cmap("copper_r")([0.3, 0.5, 0.7, 0.9])
    runs = {f"wd{wd}": (f"AdamW, wd {wd}", shade) for wd, shade in zip(DECAYS, shades, strict=True)}
    runs["perp_adamw"] = ("⊥AdamW, no wd", COLORS["perp"])
    fig, (test, train) = panels(2, width=4.2)
    for run, (label, color) in runs.items():
        df = metrics("fig15", run, results)
        pct = df.assign(test_acc=100 * df.test_acc, train_acc=100 * df.train_acc)
        mean_band(test, pct, "epoch", "test_acc", label, color)
        mean_band(train, pct, "epoch", "train_acc", label, color)
    test.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy", ylim=(-2, 102))
    train.set(xlabel="epoch", ylabel="train accuracy (%)", title="train accuracy", ylim=(-2, 102))
    test.legend(loc="center right")
    save(fig, "fig15", out_dir)
