"""Measures made for one claim of the appendix: Fig. 10 (absorbed updates), Fig. 12 (Fourier
sparsity), Fig. 15 (weight-decay sweep against ⊥AdamW) and Fig. 16 (temperature)."""

from __future__ import annotations

import pandas as pd

from reproduction.measures.registry import Measure, measure
from reproduction.measures.runs import change_since
from reproduction.results import Root, final_mean, first_epoch, value_at


@measure("fig10_ratio")
def fig10_ratio() -> Measure:
    """Absorbed-update share at the end over its value when train accuracy first reaches 100 %."""

    def measure(r: Root) -> float:
        start = first_epoch("fig10", "sgd", "train_acc", 1.0, r)
        end = final_mean("fig10", "sgd", "absorbed_fraction", r)
        return end / value_at("fig10", "sgd", "absorbed_fraction", start, r)

    return measure


@measure("fig10_zero_change")
def fig10_zero_change() -> Measure:
    """Exactly-zero-gradient share at the end minus when train accuracy first reaches 100 %, in points."""

    def measure(r: Root) -> float:
        start = first_epoch("fig10", "sgd", "train_acc", 1.0, r)
        return change_since("fig10", "sgd", "zero_grad_fraction", start, r)

    return measure


@measure("fig12_ratio")
def fig12_ratio(stem: str, grokked: str, memorizing: str) -> Measure:
    """Top-10 share of the grokked run's first-layer spectrum over the memorizing run's (mean of a,
    b), from ``fig12/<stem>sparsity.csv``."""

    def measure(r: Root) -> float:
        df = pd.read_csv(r / "fig12" / f"{stem}sparsity.csv").groupby("run").top10_share.mean()
        return float(df[grokked] / df[memorizing])

    return measure


DECAYS = ("wd2", "wd4", "wd6", "wd8")  # the runs of one Fig. 15 sweep; ⊥AdamW is <prefix>perp_adamw


def delays(r: Root, prefix: str) -> dict[str, float | None]:
    """Epoch at which test accuracy first reaches 95 %, per weight decay of the Fig. 15 sweep whose
    runs are named ``<prefix>wd<N>`` (the paper's lr is unknown: two sweeps)."""
    return {run: first_epoch("fig15", prefix + run, "test_acc", 0.95, r) for run in DECAYS}


@measure("fig15_shortening")
def fig15_shortening(prefix: str) -> Measure:
    """Epoch of 95 % test accuracy at wd 2 minus the shortest over the sweep."""

    def measure(r: Root) -> float | None:
        d = delays(r, prefix)
        reached = [v for v in d.values() if v is not None]
        return None if d["wd2"] is None else d["wd2"] - min(reached)

    return measure


@measure("fig15_best_decay")
def fig15_best_decay(prefix: str) -> Measure:
    """The weight decay with the shortest delay to 95 % test accuracy."""

    def measure(r: Root) -> float | None:
        d = {run: v for run, v in delays(r, prefix).items() if v is not None}
        return float(min(d, key=d.get).removeprefix("wd")) if d else None

    return measure


@measure("fig15_perp_at_best")
def fig15_perp_at_best(prefix: str) -> Measure:
    """⊥AdamW's test accuracy (%) at the epoch the best weight decay passes 95 %."""

    def measure(r: Root) -> float | None:
        reached = [v for v in delays(r, prefix).values() if v is not None]
        return 100 * value_at("fig15", prefix + "perp_adamw", "test_acc", min(reached), r) if reached else None

    return measure


@measure("fig15_perp_gap")
def fig15_perp_gap(prefix: str) -> Measure:
    """⊥AdamW: epochs from 95 % train to 95 % test accuracy."""

    def measure(r: Root) -> float | None:
        train = first_epoch("fig15", prefix + "perp_adamw", "train_acc", 0.95, r)
        test = first_epoch("fig15", prefix + "perp_adamw", "test_acc", 0.95, r)
        return None if train is None or test is None else test - train

    return measure


@measure("fig16_sc_onset_delay")
def fig16_sc_onset_delay() -> Measure:
    """First epoch with SC >= 50 % (the onset of Fig. 2) at T = 16 minus at T = 1."""

    def measure(r: Root) -> float | None:
        base = first_epoch("fig16", "baseline", "sc_fraction", 0.5, r)
        hot = first_epoch("fig16", "temperature16", "sc_fraction", 0.5, r)
        return None if base is None or hot is None else hot - base

    return measure
