"""The registry of measures: a name in a manifest's claim row -> the function that builds the measure.

A measure function takes the measure's arguments (a row's ``args``) and returns ``measure(root)``,
our value on one replicate of the results (``reproduction.results.Replicate``): a float, or None for a
milestone never reached. A run that is absent or has not finished raises one of
``reproduction.claims.MISSING`` (the claim is then missing on that replicate). A measure that is the
largest value over several runs may return :class:`AtLeast` when some of them stopped early on
purpose (the official code's ``--until``): the largest value over the runs that finished.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from grokking.registry import Registry
from reproduction.results import Root, metrics, summary

Measure = Callable[[Root], float | None]
MEASURES: Registry[Callable[..., Measure]] = Registry("measure", lambda build: build)


def measure(name: str):
    """Register the decorated function as the measure ``name`` (a name taken twice is an error)."""
    return MEASURES.register(name)


class AtLeast(float):
    """A lower bound on a measure's value: the largest value over the runs that finished, where other
    runs it takes the largest over stopped early (their ends would only add candidates)."""

    def __repr__(self) -> str:
        return f"AtLeast({float(self)!r})"


def stopped(figure: str, run: str, root: Root | Path) -> bool:
    """Whether the run stopped early on purpose (``summary.json`` status ``stopped``); an absent run
    raises as :func:`completed` does."""
    return summary(figure, run, root)["status"] == "stopped"


def completed(figure: str, run: str, root: Root | Path) -> pd.DataFrame:
    """The run's metrics, only once its summary says ``completed`` (a diverged run too is missing)."""
    if summary(figure, run, root)["status"] != "completed":
        raise FileNotFoundError(f"{figure}/{run} has not completed")
    return metrics(figure, run, root)
