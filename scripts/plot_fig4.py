"""Fig. 4: StableMax CE without regularization groks (AdamW lr 0.01, β2 0.999, 100k epochs).
Left: test accuracy of addition and multiplication (40 %) and sparse parity; middle: total L2 weight
norm; right: addition with one-hot inputs against a random 14-bit binary code per integer
(1000 epochs, lr 0.02, softmax CE in float64; mean and min-max band over 5 seeds). Thin grey
lines: the official code's runs of the same settings, where committed.

    python scripts/reproduce.py fig4 && python scripts/figures.py fig4

A run that is missing (or still running: no summary.json yet) is drawn from what it has logged.
"""

from __future__ import annotations

from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import (
    FIGURES,
    curves_label,
    mean_band,
    official_legend,
    official_overlay,
    panels,
    save,
    series_of,
)
from reproduction.results import RESULTS, exists, metrics

EXP = experiment("fig4")  # panels: the tasks (accuracy, and their weight norms beside), the input encodings


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    fig, (acc, norm, inputs) = panels(3)
    tasks, encodings = EXP.plot.panels
    official = False
    for run, (label, color) in series_of(tasks).items():
        if not exists(EXP.name, run, results):
            continue
        df = metrics(EXP.name, run, results)
        df = df[df.epoch > 0]
        partial = "" if (results / EXP.name / run / "summary.json").is_file() else " (partial run)"
        label = curves_label(label, df) + partial
        mean_band(acc, df.assign(test=100 * df.test_acc), "epoch", "test", label, color)
        mean_band(norm, df, "epoch", "weight_norm", label, color)
        start = df.epoch.min()  # the official log's first row is epoch 1, then every 1 000
        official |= official_overlay(acc, EXP.name, run, "test_acc", results, since=start)
        official_overlay(norm, EXP.name, run, "weight_norm", results, scale=1.0, since=start)
    if official:
        official_legend(acc, "official code")
    acc.set(xscale="log", ylim=(-3, 103), xlabel="epoch", ylabel="test accuracy (%)", title=tasks.title)
    norm.set(xscale="log", yscale="log", xlabel="epoch", ylabel="total L2 weight norm", title="weight norm")

    for run, (label, color) in series_of(encodings).items():
        if not exists(EXP.name, run, results):
            continue
        df = metrics(EXP.name, run, results)
        df = df.assign(train=100 * df.train_acc, test=100 * df.test_acc)
        mean_band(inputs, df, "epoch", "test", f"{curves_label(label, df)}: test", color)
        mean_band(inputs, df, "epoch", "train", f"{label}: train", color, ls="--", lw=1)
    inputs.set(ylim=(-3, 103), xlabel="epoch", ylabel="accuracy (%)", title=encodings.title)
    for ax, loc in ((acc, "upper left"), (norm, "upper left"), (inputs, "center right")):
        if ax.get_legend_handles_labels()[0]:  # a panel whose runs are all missing has no legend
            ax.legend(loc=loc)
    save(fig, EXP.name, out_dir)
