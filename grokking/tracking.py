"""Experiment trackers. ``none`` does nothing; ``wandb`` mirrors metrics.csv to Weights & Biases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grokking.config import LoggerConfig


class NullTracker:
    def log(self, rows: list[dict[str, float]]) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass


def build_tracker(cfg: LoggerConfig, config: dict[str, Any], out_dir: Path) -> NullTracker:
    return NullTracker()
