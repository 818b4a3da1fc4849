"""Fig. 13: MSE loss on one-hot targets, no regularization (addition, 40 %, AdamW lr 1e-3): an MLP
with 1 hidden layer generalizes, 2 and 3 hidden layers do not."""

from __future__ import annotations

from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import accuracy_and, save, series_of

EXP = experiment("fig13")  # one panel's series: the runs, their labels and colours


def main(results: Path, out_dir: Path) -> None:
    fig, acc, loss = accuracy_and(EXP.name, series_of(EXP.plot.panels[0]), results, "train_loss")
    acc.set_title("MSE: accuracy (solid test, dashed train)")
    loss.set(yscale="log", ylabel="train MSE", title="train loss")
    acc.legend(loc="center right")
    save(fig, EXP.name, out_dir)
