"""Fig. 2's 70 % setting with the softmax cross-entropy in bfloat16: modular addition, AdamW
(lr 5e-4), 20k epochs, three replicates (split seed = init seed = 0, 1, 2).

    python scripts/reproduce.py fig2_bf16 && python scripts/figures.py fig2_bf16

Left: test accuracy (solid) and train accuracy (dashed) per replicate; dotted vertical line: first
logged epoch with more than 50 % of the training samples in Softmax Collapse in bfloat16. Right: the
share of training samples in SC, measured on the same logits in bfloat16, float16, float32 and
float64 (replicate seed 0).
"""

from __future__ import annotations

from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import COLORS, FIGURES, color, panels, save
from reproduction.results import RESULTS, exists, metrics

EXP = experiment("fig2_bf16")  # one panel, a series per replicate; the first one's SC in every precision
FIGURE = EXP.name
SC_THRESHOLD = 0.5


def first_sc_epoch(df) -> int | None:
    hit = df[df.sc_fraction > SC_THRESHOLD]
    return None if hit.empty else int(hit.epoch.iloc[0])


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    fig, (acc, sc) = panels(2, width=4.2)
    [panel] = EXP.plot.panels
    for series in panel.series:
        run, line = series.run, color(series.color)
        if not exists(FIGURE, run, results):
            continue
        df = metrics(FIGURE, run, results)
        df = df[df.epoch > 0]
        acc.plot(df.epoch, 100 * df.test_acc, color=line, label=series.label)
        acc.plot(df.epoch, 100 * df.train_acc, color=line, ls="--", lw=1)
        if (onset := first_sc_epoch(df)) is not None:
            acc.axvline(onset, color=line, ls=":", lw=1.5)
        if series is panel.series[0]:
            for prec in ("bfloat16", "float16", "float32", "float64"):
                sc.plot(df.epoch, 100 * df[f"sc_fraction_{prec}"], color=COLORS[prec], label=f"in {prec}")
    acc.plot([], [], color="k", ls="--", lw=1, label="train")
    acc.plot([], [], color="k", ls=":", lw=1.5, label="SC > 50 % (bfloat16)")
    acc.set(xscale="log", ylim=(-3, 103), xlabel="epoch", ylabel="accuracy (%)", title=panel.title)
    acc.legend(loc="center left")
    sc.set(xscale="log", ylim=(-3, 103), xlabel="epoch", ylabel="samples in SC (%)", title="SC of the seed-0 logits")
    sc.legend(loc="upper left")
    save(fig, FIGURE, out_dir)
