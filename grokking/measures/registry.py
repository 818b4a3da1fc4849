"""The registry of measures: a name in ``grokking/claims.yaml`` -> the function that builds the measure.

A measure function takes the measure's arguments (a row's ``args``) and returns ``measure(root)``,
our value on one replicate of the results (``grokking.results.Replicate``): a float, or None for a
milestone never reached. A run that is absent or has not finished raises one of
``grokking.claims.MISSING`` (the claim is then missing on that replicate).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from grokking.results import Root, metrics, summary

Measure = Callable[[Root], float | None]
MEASURES: dict[str, Callable[..., Measure]] = {}


def measure(name: str):
    """Register the decorated function as the measure ``name``."""

    def register(build: Callable[..., Measure]) -> Callable[..., Measure]:
        if name in MEASURES:
            raise ValueError(f"measure {name!r} is registered twice")
        MEASURES[name] = build
        return build

    return register


def completed(figure: str, run: str, root: Root | Path) -> pd.DataFrame:
    """The run's metrics, only once its summary says ``completed`` (a diverged run too is missing)."""
    if summary(figure, run, root)["status"] != "completed":
        raise FileNotFoundError(f"{figure}/{run} has not completed")
    return metrics(figure, run, root)
