"""Fig. 16: logit temperature (logits / T) and label smoothing 0.2 against Softmax Collapse, in the
Fig. 2 setting at 60 % with a float32 softmax (AdamW lr 5e-4)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import FuncFormatter

from grokking.plotting import accuracy_curves, mean_band, panels, save
from grokking.results import metrics

RUNS = {
    "baseline": ("T = 1", "#7f7f7f"),
    "temperature4": ("T = 4", "#1f77b4"),
    "temperature16": ("T = 16", "#17becf"),
    "label_smoothing": ("label smoothing 0.2", "#2ca02c"),
}


def main(results: Path, out_dir: Path) -> None:
    fig, (acc, sc) = panels(2, width=4.2)
    for run, (label, color) in RUNS.items():
        df = metrics("fig16", run, results)
        accuracy_curves(acc, df, label, color)
        mean_band(sc, df.assign(sc_fraction=100 * df.sc_fraction), "epoch", "sc_fraction", label, color)
    acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy (solid test, dashed train)", ylim=(-2, 102))
    sc.set(xlabel="epoch", ylabel="SC fraction, float32 (%)", title="Softmax Collapse", ylim=(-2, 102))
    for ax in (acc, sc):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))
    sc.legend(loc="upper left")
    save(fig, "fig16", out_dir)
