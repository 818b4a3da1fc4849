"""Measures made for claims of the appendix: Fig. 10 (absorbed updates), Fig. 12 (Fourier
sparsity), Fig. 15 (weight-decay sweep against ⊥AdamW) and Fig. 16 (temperature). Every run name is
an argument (the claim rows of the manifests)."""

from __future__ import annotations

import pandas as pd

from reproduction.measures.registry import Measure, measure
from reproduction.measures.runs import change_since
from reproduction.results import Root, final_mean, first_epoch, value_at


@measure("rise_since_fit")
def rise_since_fit(figure: str, run: str, column: str) -> Measure:
    """``column`` at the end over its value when train accuracy first reaches 100 % (Fig. 10's
    absorbed-update share)."""

    def measure(r: Root) -> float:
        start = first_epoch(figure, run, "train_acc", 1.0, r)
        return final_mean(figure, run, column, r) / value_at(figure, run, column, start, r)

    return measure


@measure("change_since_fit")
def change_since_fit(figure: str, run: str, column: str) -> Measure:
    """``column`` at the end minus when train accuracy first reaches 100 %, in points (Fig. 10's
    exactly-zero-gradient share)."""

    def measure(r: Root) -> float:
        start = first_epoch(figure, run, "train_acc", 1.0, r)
        return change_since(figure, run, column, start, r)

    return measure


@measure("fig12_ratio")
def fig12_ratio(stem: str, grokked: str, memorizing: str) -> Measure:
    """Top-10 share of the grokked run's first-layer spectrum over the memorizing run's (mean of a,
    b), from ``fig12/<stem>sparsity.csv``."""

    def measure(r: Root) -> float:
        df = pd.read_csv(r / "fig12" / f"{stem}sparsity.csv").groupby("run").top10_share.mean()
        return float(df[grokked] / df[memorizing])

    return measure


def delays(figure: str, decays: dict, r: Root) -> dict[float, float | None]:
    """Epoch at which test accuracy first reaches 95 %, per weight decay of a sweep (``decays``:
    decay -> run name; Fig. 15 has two sweeps, the paper's lr being unknown)."""
    return {float(wd): first_epoch(figure, run, "test_acc", 0.95, r) for wd, run in decays.items()}


def _decays(decays: object) -> dict:
    if not (isinstance(decays, dict) and decays):
        raise ValueError(f"decays must map each weight decay to its run, not {decays!r}")
    return decays


@measure("decay_shortening")
def decay_shortening(figure: str, decays: dict) -> Measure:
    """Epoch of 95 % test accuracy at the first (smallest) decay minus the shortest over the sweep."""
    _decays(decays)

    def measure(r: Root) -> float | None:
        d = list(delays(figure, decays, r).values())
        reached = [v for v in d if v is not None]
        return None if d[0] is None else d[0] - min(reached)

    return measure


@measure("best_decay")
def best_decay(figure: str, decays: dict) -> Measure:
    """The weight decay with the shortest delay to 95 % test accuracy."""
    _decays(decays)

    def measure(r: Root) -> float | None:
        d = {wd: v for wd, v in delays(figure, decays, r).items() if v is not None}
        return min(d, key=d.get) if d else None

    return measure


@measure("acc_when_best_decay_generalizes")
def acc_when_best_decay_generalizes(figure: str, decays: dict, run: str) -> Measure:
    """``run``'s test accuracy (%) at the epoch the best weight decay of the sweep passes 95 %."""
    _decays(decays)

    def measure(r: Root) -> float | None:
        reached = [v for v in delays(figure, decays, r).values() if v is not None]
        return 100 * value_at(figure, run, "test_acc", min(reached), r) if reached else None

    return measure


@measure("overfit_epochs")
def overfit_epochs(figure: str, run: str, threshold: float = 0.95) -> Measure:
    """Epochs from train accuracy ``threshold`` to test accuracy ``threshold``."""

    def measure(r: Root) -> float | None:
        train = first_epoch(figure, run, "train_acc", threshold, r)
        test = first_epoch(figure, run, "test_acc", threshold, r)
        return None if train is None or test is None else test - train

    return measure


@measure("onset_delay")
def onset_delay(figure: str, run: str, minus: str, column: str = "sc_fraction", threshold: float = 0.5) -> Measure:
    """First epoch with ``column`` >= ``threshold`` (the onset of Fig. 2) of ``run`` minus that of ``minus``."""

    def measure(r: Root) -> float | None:
        base = first_epoch(figure, minus, column, threshold, r)
        hot = first_epoch(figure, run, column, threshold, r)
        return None if base is None or hot is None else hot - base

    return measure
