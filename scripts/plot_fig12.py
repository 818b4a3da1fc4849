"""Fig. 12: Fourier spectra of the first-layer weights (operand a; b is alike) of MLPs that grok
without weight decay against ones that memorize. Normalized power per frequency 1..56 (the constant
term is left out); each title gives the share of the non-constant power in the 10 strongest
frequencies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reproduction.manifest import experiment
from reproduction.plotting import color, panels, save

EXP = experiment("fig12")
# (csv stem, run, title, color) per series: the long runs (options.table) are always there, the short ones when exported
PAIRS = [(s.options.get("table", ""), s.run, s.label, color(s.color)) for p in EXP.plot.panels for s in p.series]


def read(results: Path, stem: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    prefix = f"{stem}_" if stem else ""
    spectra, sparsity = results / EXP.name / f"{prefix}spectra.csv", results / EXP.name / f"{prefix}sparsity.csv"
    if not (spectra.is_file() and sparsity.is_file()):
        return None
    return pd.read_csv(spectra), pd.read_csv(sparsity)


def main(results: Path, out_dir: Path) -> None:
    tables = {stem: read(results, stem) for stem in {p[0] for p in PAIRS}}
    shown = [p for p in PAIRS if tables[p[0]] is not None and p[1] in set(tables[p[0]][0].run)]
    if not shown:
        raise FileNotFoundError(f"{results / 'fig12'} holds no spectra (python scripts/reproduce.py fig12)")
    fig, axes = panels(len(shown), width=3.4)
    for ax, (stem, run, title, bar) in zip(axes, shown, strict=True):
        spectra, sparsity = tables[stem]
        rows = spectra[(spectra.run == run) & (spectra.operand == "a") & (spectra.frequency > 0)]
        share = sparsity[(sparsity.run == run) & (sparsity.operand == "a")].top10_share.iloc[0]
        ax.bar(rows.frequency, rows.power, width=0.9, color=bar)
        ax.set(xlabel="frequency k", ylabel="normalized power", xlim=(0, 57))
        ax.set_title(f"{title}\ntop-10 share {share:.0%}", fontsize=8.5)
    save(fig, EXP.name, out_dir)
