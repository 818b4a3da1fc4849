"""Read committed results: ``results/<figure>/<run>/{metrics.csv, summary.json, config.yaml}``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path(__file__).resolve().parent.parent / "results"


class MissingRun(FileNotFoundError):
    """A run whose results are absent or unusable (no file, an empty or headerless metrics.csv, a
    corrupt summary.json): figures draw without it, claims count it as missing."""


@cache
def _metrics(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise MissingRun(f"{path}: {e}") from None
    if not {"epoch", "seed"} <= set(df.columns) or df.empty:
        raise MissingRun(f"{path} holds no metric rows")
    return df


def metrics(figure: str, run: str, root: Path = RESULTS) -> pd.DataFrame:
    """The run's metric rows (all seeds; filter on the ``seed`` column); :class:`MissingRun` where
    there are none."""
    return _metrics(Path(root) / figure / run / "metrics.csv")


def summary(figure: str, run: str, root: Path = RESULTS) -> dict[str, Any]:
    path = Path(root) / figure / run / "summary.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MissingRun(f"{path}: {e}") from None
    if not isinstance(data, dict):
        raise MissingRun(f"{path} is not a run summary")
    return data


def exists(figure: str, run: str, root: Path = RESULTS) -> bool:
    """Whether the run has metric rows to draw."""
    try:
        metrics(figure, run, root)
    except MissingRun:
        return False
    return True


def per_seed(figure: str, run: str, key: str, root: Path = RESULTS) -> list[Any]:
    """One summary value per seed, e.g. ``per_seed("fig2", "frac0.7_float64", "epoch_sc_50")``;
    keys of the final row are read from ``final`` (e.g. ``"test_acc"``)."""
    values = []
    for s in summary(figure, run, root)["per_seed"].values():
        values.append(s[key] if key in s else s["final"][key])
    return values


def final_mean(figure: str, run: str, column: str, root: Path = RESULTS) -> float:
    """Mean over seeds of the last logged value of ``column``."""
    df = metrics(figure, run, root)
    return float(df[df.epoch == df.epoch.max()][column].mean())


def value_at(figure: str, run: str, column: str, epoch: int, root: Path = RESULTS) -> float:
    """Mean over seeds of ``column`` at the last logged epoch <= ``epoch``."""
    df = metrics(figure, run, root)
    at = df[df.epoch <= epoch].epoch.max()
    return float(df[df.epoch == at][column].mean())


def first_epoch(figure: str, run: str, column: str, threshold: float, root: Path = RESULTS) -> float | None:
    """Mean over seeds of the first logged epoch with ``column >= threshold`` (None if a seed never does)."""
    df = metrics(figure, run, root)
    epochs = []
    for _, rows in df.groupby("seed"):
        hit = rows[rows[column] >= threshold]
        if hit.empty:
            return None
        epochs.append(int(hit.epoch.iloc[0]))
    return sum(epochs) / len(epochs)
