"""Fig. 16: logit temperature (logits / T) and label smoothing 0.2 against Softmax Collapse, in the
Fig. 2 setting at 60 % with a float32 softmax (AdamW lr 5e-4)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import FuncFormatter

from reproduction.manifest import experiment
from reproduction.plotting import accuracy_and, save, series_of

EXP = experiment("fig16")  # one panel's series: the runs, their labels and colours


def main(results: Path, out_dir: Path) -> None:
    fig, acc, sc = accuracy_and(
        EXP.name, series_of(EXP.plot.panels[0]), results, "sc_fraction", log_epochs=False, scale=100
    )
    sc.set(ylabel="SC fraction, float32 (%)", title="Softmax Collapse", ylim=(-2, 102))
    for ax in (acc, sc):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))
    sc.legend(loc="upper left")
    save(fig, EXP.name, out_dir)
