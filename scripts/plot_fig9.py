"""Fig. 9: Fig. 2 with SGD whose step is divided by the full-gradient norm (lr 3 at 40 %, 4 at
60/70 %), loss in float16 / float32 / float64. Solid test, dashed train; a dotted vertical line where
the SC fraction first exceeds 50 %. ``fig9_plain_sgd``: the same with plain SGD (momentum 0.2), the
optimizer the authors' run script uses, drawn where those runs exist."""

from __future__ import annotations

from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import accuracy_curves, color, official_legend, official_overlay, panels, save
from reproduction.results import exists, metrics, per_seed

EXP = experiment("fig9")  # a file per panel ``out``: fig9, and fig9_plain_sgd where its runs exist


def main(results: Path, out_dir: Path) -> None:
    files: dict[str, list] = {}
    for panel in EXP.plot.panels:
        files.setdefault(panel.out or EXP.name, []).append(panel)
    for name, group in files.items():
        if name == EXP.name or any(exists(EXP.name, s.run, results) for p in group for s in p.series):
            draw(results, out_dir, group, name)


def draw(results: Path, out_dir: Path, group: list, name: str) -> None:
    fig, axes = panels(len(group))
    official = False
    for ax, panel in zip(axes, group, strict=True):
        for series in panel.series:
            run, line = series.run, color(series.color)
            if not exists(EXP.name, run, results):
                continue
            df = metrics(EXP.name, run, results)
            df = df[df.epoch > 0]  # log axis
            accuracy_curves(ax, df, series.label, line)
            for epoch in per_seed(EXP.name, run, "epoch_sc_50", results):
                if epoch is not None:
                    ax.axvline(epoch, color=line, ls=":", lw=1.2)
            official |= official_overlay(ax, EXP.name, run, "test_acc", results)
        ax.set(title=panel.title, xlabel="epoch", xscale="log")
        ax.set(xlim=(50, 10_000), ylim=(-2, 102), ylabel="accuracy (%)")
    legend = next((ax for ax in axes if ax.lines), axes[0])  # the first panel with runs
    if official:  # the official script's plain-SGD runs, test accuracy
        official_legend(legend)
    legend.legend(title="loss dtype", loc="center left")
    save(fig, name, out_dir)
