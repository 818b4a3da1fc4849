"""Fig. 13: MSE loss on one-hot targets, no regularization (addition, 40 %, AdamW lr 1e-3): an MLP
with 1 hidden layer generalizes, 2 and 3 hidden layers do not."""

from __future__ import annotations

from pathlib import Path

from reproduction.plotting import accuracy_and, save

RUNS = {
    "depth1": ("1 hidden layer", "#2ca02c"),
    "depth2": ("2 hidden layers", "#1f77b4"),
    "depth3": ("3 hidden layers", "#9467bd"),
}


def main(results: Path, out_dir: Path) -> None:
    fig, acc, loss = accuracy_and("fig13", RUNS, results, "train_loss")
    acc.set_title("MSE: accuracy (solid test, dashed train)")
    loss.set(yscale="log", ylabel="train MSE", title="train loss")
    acc.legend(loc="center right")
    save(fig, "fig13", out_dir)
