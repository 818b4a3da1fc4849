"""Atomic, self-describing checkpoints and the files of a run directory."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CONFIG = "config.yaml"
SNAPSHOTS = "snapshots.pt"
LOCK = ".lock"
STATUSES = ("completed", "diverged", "interrupted")  # a run's status in summary.json

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


class RunFileError(ValueError):
    """A file of a run directory that cannot be read or written; the message is one line meant for the user."""


def write_failed(path: Path, err: OSError) -> RunFileError:
    """The one-line error for a write into a run directory that failed (disk full, read-only, permissions)."""
    reason = err.strerror or os.strerror(err.errno or 0) or type(err).__name__
    hint = {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space",
        errno.EROFS: "the file system is read-only; choose another run directory",
        errno.EACCES: "check its permissions or choose another run directory",
        errno.EPERM: "check its permissions or choose another run directory",
    }.get(err.errno, "check the disk and the directory's permissions")
    return RunFileError(
        f"{path} cannot be written ({reason}); {hint}, then rerun the same command to resume from the last checkpoint"
    )


def write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Every file of a run is written here, but the rows appended to metrics.csv (tests make it fail like a full disk)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename: a crash never leaves an empty file under the name


def atomic_write(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to a temporary file in the same directory, then rename it over ``path``. A write
    that fails (disk full, read-only, permissions) leaves ``path`` as it was and no temporary file,
    and raises :class:`RunFileError` with one line for the user."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write_bytes(tmp, data)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp.is_file() or tmp.is_symlink():
            tmp.unlink()
        if isinstance(e, OSError):
            raise write_failed(path, e) from None
        raise


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Serialized in memory, then written atomically. ``torch.save`` writes a zip archive with a
    CRC-32 checksum of every record; :func:`load_checkpoint` verifies them."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getbuffer())


def verify_checksums(path: Path) -> None:
    """Raise :class:`RunFileError` where a record of the checkpoint's zip archive does not match its
    CRC-32 checksum (torch itself reads records without checking them). The file is left as it is."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = archive.testzip()
        why = None if name is None else f"the checksum of its record {name} does not match"
    except zipfile.BadZipFile as e:
        if not zipfile.is_zipfile(path):
            return  # not a zip archive at all: torch.load says what it is
        why = f"its zip directory is damaged: {e}"[:100]
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as e:
        why = f"{type(e).__name__}: {e}"[:100]
    if why is not None:
        raise RunFileError(
            f"{path} is corrupt ({why}); it is kept as it is: restore it, delete it to start the run over, "
            "or pass overwrite=true"
        )


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint (or snapshots file) this project wrote. It is loaded with ``weights_only=True``
    (tensors and plain Python values only), so a crafted file cannot run code; a file that is
    empty, truncated, corrupt (its checksums are verified first) or not a checkpoint raises
    :class:`RunFileError`."""
    if path.is_dir():
        raise RunFileError(f"{path} is a directory, not a checkpoint; move it away, or pass overwrite=true")
    if path.is_file() and path.stat().st_size == 0:
        raise RunFileError(
            f"{path} cannot be read (it is empty: the process that wrote it died first); delete it to start the run "
            "over, or pass overwrite=true"
        )
    verify_checksums(path)
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
    atomic_write(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


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
    if not isinstance(summary, dict) or "status" not in summary:
        raise RunFileError(
            f"{path} is not a run summary (no status); restore it, or delete it to resume from the checkpoint"
        )
    if summary["status"] not in STATUSES or not isinstance(summary.get("epoch", 0), int):
        what = f"status {summary['status']!r}" if summary["status"] not in STATUSES else f"epoch {summary['epoch']!r}"
        raise RunFileError(
            f"{path} holds an invalid {what} (a status is one of: {', '.join(STATUSES)}, with an integer epoch); "
            "restore it, or delete it to resume from the checkpoint"
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
        text = io.StringIO(newline="")
        if self.rows:
            writer = csv.DictWriter(text, fieldnames=self.fields, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        atomic_write(self.path, text.getvalue().encode())
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
        try:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields, restval="").writerows(new_rows)
        except OSError as e:  # the rows are in the next checkpoint's rows: a resumed run rewrites the file
            raise write_failed(self.path, e) from None
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
