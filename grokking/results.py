"""Read committed results: ``results/<figure>/<run>/{metrics.csv, summary.json, config.yaml}``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path(__file__).resolve().parent.parent / "results"


@cache
def _metrics(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def metrics(figure: str, run: str, root: Path = RESULTS) -> pd.DataFrame:
    """The run's metric rows (all seeds; filter on the ``seed`` column)."""
    return _metrics(Path(root) / figure / run / "metrics.csv")


def summary(figure: str, run: str, root: Path = RESULTS) -> dict[str, Any]:
    return json.loads((Path(root) / figure / run / "summary.json").read_text())


def exists(figure: str, run: str, root: Path = RESULTS) -> bool:
    return (Path(root) / figure / run / "metrics.csv").is_file()


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
