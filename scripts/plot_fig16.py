"""Fig. 16: logit temperature (logits / T) and label smoothing 0.2 against Softmax Collapse, in the
Fig. 2 setting at 60 % with a float32 softmax (AdamW lr 5e-4)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import FuncFormatter

from reproduction.plotting import accuracy_and, save

RUNS = {
    "baseline": ("T = 1", "#7f7f7f"),
    "temperature4": ("T = 4", "#1f77b4"),
    "temperature16": ("T = 16", "#17becf"),
    "label_smoothing": ("label smoothing 0.2", "#2ca02c"),
}


def main(results: Path, out_dir: Path) -> None:
    fig, acc, sc = accuracy_and("fig16", RUNS, results, "sc_fraction", log_epochs=False, scale=100)
    sc.set(ylabel="SC fraction, float32 (%)", title="Softmax Collapse", ylim=(-2, 102))
    for ax in (acc, sc):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))
    sc.legend(loc="upper left")
    save(fig, "fig16", out_dir)
