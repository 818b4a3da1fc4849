"""Atomic, self-describing checkpoints and the files of a run directory."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CONFIG = "config.yaml"
SNAPSHOTS = "snapshots.pt"
LOCK = ".lock"

# keys that may differ between a run and its resumption
RESUMABLE_CHANGES = (
    "epochs",
    "device",
    "cuda_graph",
    "cpu_kernel",
    "overwrite",
    "checkpoint_every",
    "logger",
    "stop_when",
)
# keys added to the config after runs were saved without them: the value that reproduces those runs
ADDED_KEYS = {("precision", "backward_log2_scale"): 0}


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def read_summary(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / SUMMARY
    return json.loads(path.read_text()) if path.is_file() else None


class MetricsWriter:
    """Appends metric rows to ``metrics.csv`` as they are logged (flushed at once, so nothing
    logged is lost if the process dies); the header is fixed by the first row."""

    def __init__(self, path: Path, rows: list[dict[str, float]]):
        self.path = path
        self.fields: list[str] | None = list(rows[0]) if rows else None
        with open(path, "w", newline="") as f:
            if rows:
                writer = csv.DictWriter(f, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(rows)

    def append(self, rows: list[dict[str, float]]) -> None:
        with open(self.path, "a", newline="") as f:
            if self.fields is None:
                self.fields = list(rows[0])
                csv.DictWriter(f, fieldnames=self.fields).writeheader()
            csv.DictWriter(f, fieldnames=self.fields).writerows(rows)


def missing_added_keys(saved: dict[str, Any]) -> dict[str, Any]:
    """The keys of :data:`ADDED_KEYS` that a saved config lacks, dotted, with their old-behaviour value."""
    return {
        f"{group}.{key}": old
        for (group, key), old in ADDED_KEYS.items()
        if isinstance(saved.get(group), dict) and key not in saved[group]
    }


def config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs (resumable keys excluded).
    A key in :data:`ADDED_KEYS` that ``saved`` lacks counts as saved with its old-behaviour value."""
    if not prefix:
        for dotted, old in missing_added_keys(saved).items():
            group, key = dotted.split(".")
            saved = {**saved, group: {**saved[group], key: old}}
    diffs = []
    for key in sorted(set(saved) | set(current)):
        if not prefix and key in RESUMABLE_CHANGES:
            continue
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}")
    return diffs
