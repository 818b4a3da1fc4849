"""Fig. 13: MSE loss on one-hot targets, no regularization (addition, 40 %, AdamW lr 1e-3): an MLP
with 1 hidden layer generalizes, 2 and 3 hidden layers do not."""

from __future__ import annotations

from pathlib import Path

from grokking.plotting import accuracy_curves, mean_band, panels, save
from grokking.results import metrics

RUNS = {"depth1": "#2ca02c", "depth2": "#1f77b4", "depth3": "#9467bd"}


def main(results: Path, out_dir: Path) -> None:
    fig, (acc, loss) = panels(2, width=4.2)
    for run, color in RUNS.items():
        label = f"{run[-1]} hidden layer{'s' if run[-1] != '1' else ''}"
        df = metrics("fig13", run, results)
        df = df[df.epoch > 0]  # log axis
        accuracy_curves(acc, df, label, color)
        mean_band(loss, df, "epoch", "train_loss", label, color)
    acc.set(xlabel="epoch", xscale="log", ylim=(-2, 102), ylabel="accuracy (%)")
    acc.set_title("MSE: accuracy (solid test, dashed train)")
    loss.set(xlabel="epoch", xscale="log", yscale="log", ylabel="train MSE")
    loss.set_title("train loss")
    acc.legend(loc="center right")
    save(fig, "fig13", out_dir)
