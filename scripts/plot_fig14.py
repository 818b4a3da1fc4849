"""Fig. 14: MNIST, 200 training images, MLP 784-200-200-10 with every parameter × 100 after the
default init, softmax CE, AdamW lr 1e-3: without weight decay SC holds from the start and test
accuracy stays low; with weight decay 1.0 the norm shrinks, SC falls and test accuracy jumps."""

from __future__ import annotations

from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import mean_band, panels, present_runs, save, series_of
from reproduction.results import metrics

EXP = experiment("fig14")  # one panel's series, each drawn in all three panels


def main(results: Path, out_dir: Path) -> None:
    fig, (acc, sc, norm) = panels(3)
    runs = series_of(EXP.plot.panels[0])
    for run in present_runs(acc, EXP.name, runs, results):
        label, color = runs[run]
        df = metrics(EXP.name, run, results)
        pct = df.assign(test_acc=100 * df.test_acc, sc_fraction=100 * df.sc_fraction)
        mean_band(acc, pct, "epoch", "test_acc", label, color)
        mean_band(sc, pct, "epoch", "sc_fraction", label, color)
        mean_band(norm, df, "epoch", "weight_norm", label, color)
    acc.set(ylabel="test accuracy (%)", title=EXP.plot.panels[0].title, ylim=(0, 100))
    sc.set(ylabel="SC fraction, float32 (%)", title="Softmax Collapse", ylim=(-2, 102))
    norm.set(ylabel="total L2 weight norm", yscale="log", title="weight norm")
    for ax in (acc, sc, norm):
        ax.set_xlabel("epoch")
    acc.legend()
    save(fig, EXP.name, out_dir)
