"""Fig. 8: Softmax Collapse by intervention. Addition, 60 %, AdamW lr 1e-3, float64 softmax; from
epoch 6000 the gradient through the correct-class logit is zeroed each step (``fig8/intervention``)."""

from __future__ import annotations

from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import accuracy_curves, mean_band, panels, present_runs, save, series_of
from reproduction.results import metrics

EXP = experiment("fig8")  # one panel's series, each drawn in all three panels
INTERVENTION_EPOCH = 6000


def main(results: Path, out_dir: Path) -> None:
    fig, (acc, sc, norm) = panels(3)
    runs = series_of(EXP.plot.panels[0])
    for run in present_runs(acc, EXP.name, runs, results):
        label, color = runs[run]
        df = metrics(EXP.name, run, results)
        accuracy_curves(acc, df, label, color)
        mean_band(sc, df.assign(sc_fraction=100 * df.sc_fraction), "epoch", "sc_fraction", label, color)
        mean_band(norm, df, "epoch", "weight_norm", label, color)
    for ax in (acc, sc, norm):
        ax.axvline(INTERVENTION_EPOCH, color="k", ls=":", lw=1)
        ax.set_xlabel("epoch")
    acc.set(ylabel="accuracy (%)", title="accuracy (solid test, dashed train)", ylim=(-2, 102))
    sc.set(ylabel="SC fraction, float64 (%)", title="Softmax Collapse", ylim=(-2, 102))
    norm.set(ylabel="total L2 weight norm", yscale="log", title="weight norm")
    sc.legend(loc="upper left")
    save(fig, EXP.name, out_dir)
