"""Fig. 11: grokking without weight decay through (i) a logit-norm penalty and (ii) a second-order
Taylor softmax (exp x -> 1 + x + x²/2), beside a plain softmax baseline (addition, 40 %, AdamW)."""

from __future__ import annotations

from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import accuracy_and, save, series_of

EXP = experiment("fig11")  # one panel's series: the runs, their labels and colours


def main(results: Path, out_dir: Path) -> None:
    fig, acc, logits = accuracy_and(EXP.name, series_of(EXP.plot.panels[0]), results, "logit_norm")
    logits.set(yscale="log", ylabel="mean logit L2 norm", title="logit norm")
    acc.legend(loc="center right")
    save(fig, EXP.name, out_dir)
