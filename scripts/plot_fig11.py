"""Fig. 11: grokking without weight decay through (i) a logit-norm penalty and (ii) a second-order
Taylor softmax (exp x -> 1 + x + x²/2), beside a plain softmax baseline (addition, 40 %, AdamW)."""

from __future__ import annotations

from pathlib import Path

from grokking.plotting import accuracy_curves, mean_band, panels, save
from grokking.results import metrics

RUNS = {
    "baseline": ("softmax CE", "#7f7f7f"),
    "logit_penalty": ("+ logit-norm penalty 1e-3", "#2ca02c"),
    "taylor": ("Taylor softmax", "#ff7f0e"),
}


def main(results: Path, out_dir: Path) -> None:
    fig, (acc, logits) = panels(2, width=4.2)
    for run, (label, color) in RUNS.items():
        df = metrics("fig11", run, results)
        df = df[df.epoch > 0]  # log axis
        accuracy_curves(acc, df, label, color)
        mean_band(logits, df, "epoch", "logit_norm", label, color)
    acc.set(xlabel="epoch", xscale="log", ylim=(-2, 102), ylabel="accuracy (%)")
    acc.set_title("accuracy (solid test, dashed train)")
    logits.set(xlabel="epoch", xscale="log", yscale="log", ylabel="mean logit L2 norm")
    logits.set_title("logit norm")
    acc.legend(loc="center right")
    save(fig, "fig11", out_dir)
