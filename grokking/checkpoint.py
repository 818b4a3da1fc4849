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
    "extend",
    "checkpoint_every",
    "logger",
    "stop_when",
    "log_resolution",  # which epochs log, not what they compute (runs saved before it existed resume)
)
# A key added to the config after runs were saved without it resumes with its spec's old value
# (``Param.old``, declared where the parameter is: grokking.config.with_old_values).


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


class RunFileError(ValueError):
    """A file of a run directory that cannot be read; the message is one line meant for the user."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint (or snapshots file) this project wrote. It is loaded with ``weights_only=True``
    (tensors and plain Python values only), so a crafted file cannot run code; a file that is
    empty, truncated, corrupt or not a checkpoint raises :class:`RunFileError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types here: RuntimeError, UnpicklingError, EOFError, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunFileError(
            f"{path} cannot be read ({reason[:120]}); it is empty, truncated, corrupt or not a checkpoint of "
            "this project: delete it to start the run over, or pass overwrite=true"
        ) from None
    if not isinstance(state, dict):
        raise RunFileError(f"{path} is not a checkpoint of this project (it holds a {type(state).__name__})")
    return state


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def read_summary(out_dir: Path) -> dict[str, Any] | None:
    """The run's summary.json, None where there is none; :class:`RunFileError` where it is not a summary."""
    path = out_dir / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFileError(
            f"{path} cannot be read ({e}); restore it, or delete it to resume from the checkpoint"
        ) from None
    if not isinstance(summary, dict) or not isinstance(summary.get("status"), str):
        raise RunFileError(
            f"{path} is not a run summary (no status); restore it, or delete it to resume from the checkpoint"
        )
    return summary


class MetricsWriter:
    """Keeps ``metrics.csv`` equal to ``rows``, every row the run has logged (the checkpoint's rows
    on a resume). New rows are appended as they are logged (flushed at once, so nothing logged is
    lost if the process dies). The header holds every column any row has, in order of first
    appearance: a run resumed from a checkpoint saved before a metric column existed grows the
    header (the file is rewritten, the old rows' new cells left empty). Where the file was deleted,
    truncated or changed behind the run's back, it is rewritten whole from ``rows``."""

    def __init__(self, path: Path, rows: list[dict[str, float]]):
        self.path, self.rows = path, rows
        self.fields: list[str] | None = None
        self.size = -1  # the file's size after our last write
        self.rewrite()

    def rewrite(self) -> None:
        self.fields = list(dict.fromkeys(k for row in self.rows for k in row)) if self.rows else None
        with open(self.path, "w", newline="") as f:
            if self.rows:
                writer = csv.DictWriter(f, fieldnames=self.fields, restval="")
                writer.writeheader()
                writer.writerows(self.rows)
        self.size = self.path.stat().st_size

    def intact(self) -> bool:
        try:
            return self.path.stat().st_size == self.size
        except FileNotFoundError:
            return False

    def append(self, new_rows: list[dict[str, float]]) -> None:
        """Write ``new_rows``, which the caller has already added to ``rows``."""
        known = set(self.fields or ())
        if not self.intact() or self.fields is None or any(k not in known for row in new_rows for k in row):
            self.rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, restval="").writerows(new_rows)
        self.size = self.path.stat().st_size

    def sync(self) -> None:
        """Rewrite the file from ``rows`` where it no longer holds them (called at the end of a run)."""
        if not self.intact():
            self.rewrite()


def missing_added_keys(saved: dict[str, Any]) -> dict[str, Any]:
    """The keys that a saved config lacks (saved before they existed), dotted, with the old value
    that their spec declares (the value that reproduces those runs)."""
    from grokking.config import missing_keys

    return missing_keys(saved)


def config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs (resumable keys excluded).
    A key that ``saved`` lacks counts as saved with its spec's old value."""
    if not prefix:
        from grokking.config import with_old_values

        saved = with_old_values(saved)
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
