"""Measures on one run (or two runs of a figure), shared by claims of many figures.

Accuracies come out in percent. A measure of a run's end reads only finished runs
(``reproduction.results.metrics``); those marked *completed only* also count a diverged run as missing.
Onsets and values at an epoch are read from a run that stopped early too, once it got that far
(``reproduction.results.logged``).
"""

from __future__ import annotations

import numpy as np

from reproduction.measures.registry import Measure, completed, measure
from reproduction.results import Root, final_mean, first_epoch, metrics, onsets, per_seed, value_at


@measure("pct_final")
def pct_final(figure: str, run: str, column: str = "test_acc") -> Measure:
    """Seed mean of the last logged ``column``, in percent (completed only)."""

    def measure(r: Root) -> float:
        completed(figure, run, r)
        return 100 * final_mean(figure, run, column, r)

    return measure


@measure("pct_at")
def pct_at(figure: str, run: str, epoch: int, column: str = "test_acc") -> Measure:
    """Seed mean of ``column`` at the logged epoch nearest ``epoch``, in percent (a run that stopped
    early answers once it has logged ``epoch``)."""
    return lambda r: 100 * value_at(figure, run, column, epoch, r)


@measure("max_pct")
def max_pct(figure: str, run: str, column: str = "test_acc") -> Measure:
    """Largest seed-mean value of ``column`` over training, in percent (completed only)."""
    return lambda r: 100 * completed(figure, run, r).groupby("epoch")[column].mean().max()


@measure("max_train_test_gap")
def max_train_test_gap(figure: str, run: str) -> Measure:
    """Largest (train - test) accuracy gap over training, in points (seed means; completed only)."""

    def measure(r: Root) -> float:
        df = completed(figure, run, r).groupby("epoch")[["train_acc", "test_acc"]].mean()
        return 100 * (df.train_acc - df.test_acc).max()

    return measure


@measure("last_value")
def last_value(figure: str, run: str, column: str) -> Measure:
    """``column`` in the last metrics row (completed only), e.g. the final ``weight_norm``."""
    return lambda r: completed(figure, run, r)[column].iloc[-1]


@measure("first_test_50")
def first_test_50(figure: str, run: str) -> Measure:
    """The first epoch with test accuracy >= 50 % (onset rule of ``reproduction.results.onset``) of a
    single-seed run."""
    return first_onset(figure, run, "test_acc", 0.5)


@measure("first_onset")
def first_onset(figure: str, run: str, column: str, threshold: float) -> Measure:
    """The onset of ``column >= threshold`` of the run's first seed (``reproduction.results.onsets``)."""
    return lambda r: onsets(figure, run, column, threshold, r)[0]


@measure("mean_onset")
def mean_onset(figure: str, run: str, column: str, threshold: float) -> Measure:
    """Seed mean of the onset of ``column >= threshold`` (``reproduction.results.first_epoch``)."""
    return lambda r: first_epoch(figure, run, column, threshold, r)


@measure("test_pct")
def test_pct(figure: str, run: str) -> Measure:
    """Seed mean of the last logged test accuracy, in percent."""
    return lambda r: 100 * final_mean(figure, run, "test_acc", r)


@measure("test_pct_diff")
def test_pct_diff(figure: str, run: str, minus: str) -> Measure:
    """Final test accuracy of ``run`` minus that of ``minus`` (``test_pct`` of each), in points."""
    return lambda r: test_pct(figure, run)(r) - test_pct(figure, minus)(r)


def change_since(figure: str, run: str, column: str, start: float, r: Root, scale: float = 100.0) -> float:
    """Last logged seed mean of ``column`` minus its value at epoch ``start``, times ``scale``."""
    return scale * (final_mean(figure, run, column, r) - value_at(figure, run, column, start, r))


@measure("change")
def change(figure: str, run: str, column: str, start: int) -> Measure:
    """Last logged ``column`` minus its value at epoch ``start``, in points (x 100)."""
    return lambda r: change_since(figure, run, column, start, r)


@measure("sc_pct")
def sc_pct(figure: str, run: str, which: str) -> Measure:
    """The SC fraction in percent: ``final`` (seed mean of the last logged value), or the ``min``
    or ``max`` over every logged row."""
    if which == "final":
        return lambda r: 100 * final_mean(figure, run, "sc_fraction", r)
    if which in ("min", "max"):
        return lambda r: 100 * float(getattr(metrics(figure, run, r).sc_fraction, which)())
    raise ValueError(f"which must be final, min or max, not {which!r}")


@measure("per_seed_diff")
def per_seed_diff(figure: str, run: str, baseline: str) -> Measure:
    """Mean over seeds of the final test accuracy (``summary.json``) of ``run`` minus ``baseline``'s, in points."""

    def measure(r: Root) -> float:
        ours = np.mean(per_seed(figure, run, "test_acc", r))
        return 100 * float(ours - np.mean(per_seed(figure, baseline, "test_acc", r)))

    return measure


@measure("loss_ratio")
def loss_ratio(figure: str, column: str, num: list[str], den: list[str]) -> Measure:
    """Ratio of two values of ``column`` (completed only): ``num`` and ``den`` are each ``[run, which]``
    with ``which`` one of ``initial``, ``final`` (first and last row) or ``max`` (over training)."""
    for _, which in (num, den):
        if which not in ("initial", "final", "max"):
            raise ValueError(f"which must be initial, final or max, not {which!r}")

    def value(run: str, which: str, r: Root) -> float:
        loss = completed(figure, run, r)[column]
        return {"final": loss.iloc[-1], "initial": loss.iloc[0], "max": loss.max()}[which]

    return lambda r: value(*num, r) / value(*den, r)
