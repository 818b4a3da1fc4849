"""Fig. 11: grokking without weight decay through (i) a logit-norm penalty and (ii) a second-order
Taylor softmax (exp x -> 1 + x + x²/2), beside a plain softmax baseline (addition, 40 %, AdamW)."""

from __future__ import annotations

from pathlib import Path

from reproduction.plotting import accuracy_and, save

RUNS = {
    "baseline": ("softmax CE", "#7f7f7f"),
    "logit_penalty": ("+ logit-norm penalty 1e-3", "#2ca02c"),
    "taylor": ("Taylor softmax", "#ff7f0e"),
}


def main(results: Path, out_dir: Path) -> None:
    fig, acc, logits = accuracy_and("fig11", RUNS, results, "logit_norm")
    logits.set(yscale="log", ylabel="mean logit L2 norm", title="logit norm")
    acc.legend(loc="center right")
    save(fig, "fig11", out_dir)
