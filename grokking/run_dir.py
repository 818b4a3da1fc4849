"""Which directories a run may write into: a new or empty one, or one that holds a run of this project.

Everything here is checked before anything is written, so a refused directory stays as it was:
a directory of the user's own files (their ``config.yaml``, a ``.hydra/`` of another program),
the current directory, a dangling symbolic link, or a run directory whose files have the wrong kind
(``metrics.csv`` a directory, ``.previous`` a file) is one ``error:`` line.

A directory that accepts a run becomes a :class:`RunDir` (:meth:`RunDir.open`): it is locked for
the process's lifetime, refuses to clobber a finished run, moves a run that ``overwrite=true``
replaces aside until the new one has a result (:class:`Replacement`), and keeps what the training
loop hands it: the config, the metric rows, checkpoints, parameter snapshots, the record of each
training stretch and the summary.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

from grokking.checkpoint import (
    CHECKPOINT,
    CONFIG,
    LOCK,
    METRICS,
    SNAPSHOTS,
    SUMMARY,
    MetricsWriter,
    RunFileError,
    atomic_write,
    config_differences,
    load_checkpoint,
    missing_added_keys,
    read_summary,
    save_checkpoint,
    write_failed,
    write_json,
)
from grokking.errors import ConfigError

HYDRA_DIR = ".hydra"  # Hydra's record of the run (config, overrides), written once the run is accepted
PREVIOUS = ".previous"  # the run that overwrite=true replaces, kept here until the new run has a checkpoint
WANDB = "wandb"  # the wandb logger's offline runs and run id
LOG = "train.log"  # Hydra's job log; scripts/reproduce.py's log of the run's output
FILES = (CHECKPOINT, METRICS, SUMMARY, SNAPSHOTS, CONFIG, LOCK, LOG)  # each a regular file
FOLDERS = (HYDRA_DIR, PREVIOUS, WANDB)  # each a directory
RESULTS = (CHECKPOINT, METRICS, SUMMARY, SNAPSHOTS, PREVIOUS)  # any of these: the directory holds a run
RUN_FILES = (CHECKPOINT, METRICS, SUMMARY, SNAPSHOTS, CONFIG, HYDRA_DIR)  # what overwrite=true moves aside
FINISHED = ("completed", "diverged")  # a finished run is a result: kept unless overwrite=true
HYDRA_RECORD = ("config.yaml", "hydra.yaml", "overrides.yaml")


def config_keys() -> set[str]:
    from grokking.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def is_our_config(path: Path) -> bool:
    """Whether ``path`` is a config this project wrote (a mapping of the training config's keys)."""
    try:
        node = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(node, dict) and "epochs" in node and set(node) <= config_keys() | {"hydra"}


def foreign_entries(out_dir: Path) -> list[str]:
    """The entries of ``out_dir`` that are not part of a run of this project."""
    names = sorted(p.name for p in out_dir.iterdir())
    has_results = any(name in RESULTS for name in names)
    known = {*FILES, *FOLDERS}
    foreign = [n for n in names if n not in known and not (n.endswith(".tmp") and n[: -len(".tmp")] in known)]
    if not has_results:  # a run that has not logged yet: its config files must be ours
        if CONFIG in names and (out_dir / CONFIG).is_file() and not is_our_config(out_dir / CONFIG):
            foreign.append(CONFIG)
        hydra = out_dir / HYDRA_DIR
        if hydra.is_dir():
            inside = sorted(p.name for p in hydra.iterdir())
            record = hydra / "config.yaml"
            if set(inside) - set(HYDRA_RECORD) or (record.is_file() and not is_our_config(record)):
                foreign.append(HYDRA_DIR)
    return foreign


def check_run_dir(out_dir: Path) -> None:
    """Raise :class:`ConfigError` (one line, nothing written) where ``out_dir`` cannot take a run."""
    if out_dir.is_symlink() and not out_dir.exists():
        raise ConfigError(
            f"{out_dir} is a symbolic link to {os.readlink(out_dir)}, which does not exist; create its target or "
            "choose another run directory"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file, not a directory; choose another run directory")
    if not out_dir.is_dir():
        return
    if out_dir.resolve() == Path.cwd().resolve():
        raise ConfigError(
            f"{out_dir} is the current directory (as an empty hydra.run.dir= makes it); pass hydra.run.dir=DIR, "
            "a directory of the run's own"
        )
    try:
        foreign = foreign_entries(out_dir)
    except OSError as e:
        raise ConfigError(f"{out_dir} cannot be read ({e.strerror}); choose another run directory") from None
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(
            f"{out_dir} holds files that are not a run of this project ({shown}); nothing was written: "
            "choose a new or empty run directory"
        )
    for name in FILES:
        if (out_dir / name).is_dir():
            raise ConfigError(
                f"{out_dir / name} is a directory where the run keeps its {name} file; move it away or choose "
                "another run directory"
            )
    for name in FOLDERS:
        path = out_dir / name
        if (path.exists() or path.is_symlink()) and not path.is_dir():
            raise ConfigError(
                f"{path} is a file where the run keeps its {name}/ folder; move it away or choose another run directory"
            )


def os_error_line(err: OSError) -> str:
    """One line for a run directory that Hydra could not create (``err.filename`` names it)."""
    where = err.filename or "the run directory"
    if err.filename and Path(err.filename).is_symlink() and not Path(err.filename).exists():
        return f"{where} is a symbolic link to {os.readlink(err.filename)}, which does not exist; create its target or choose another run directory"
    return f"{where} cannot be used ({err.strerror}); choose another run directory"


# the run directory that has accepted a run ---------------------------------------------------------
def lock_run_dir(out_dir: Path):
    """Hold an exclusive lock on the run directory for this process's lifetime (two processes
    training into one directory would interleave their metric rows)."""
    try:
        handle = open(out_dir / LOCK, "w")  # kept open: the lock lives as long as the handle
    except OSError as e:
        raise ConfigError(f"{out_dir} cannot be written ({e.strerror}); choose another directory") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(
            f"{out_dir} is in use by another training process; wait for it or choose another directory"
        ) from None
    return handle


class Replacement:
    """``overwrite=true``: the run in the directory is moved into ``.previous/`` rather than deleted,
    and is deleted only once the new run has written its first checkpoint or its summary. If the new
    run fails before that, or the process dies, the old run is moved back (on failure at once, after
    a crash by the next run in the directory). ``wandb/`` is never touched, except that the old run's
    wandb id moves aside, so the new run starts a wandb run of its own."""

    def __init__(self, out_dir: Path):
        self.out_dir, self.previous = out_dir, out_dir / PREVIOUS

    @property
    def pending(self) -> bool:
        return self.previous.is_dir()

    def move_aside(self) -> None:
        from grokking.tracking import WandbTracker

        self.previous.mkdir()
        for name in RUN_FILES:
            if (self.out_dir / name).exists():
                os.replace(self.out_dir / name, self.previous / name)
        run_id = self.out_dir / WANDB / WandbTracker.RUN_ID
        if run_id.is_file():
            os.replace(run_id, self.previous / WandbTracker.RUN_ID)

    def restore(self) -> None:
        """Put the old run back, dropping whatever the new run wrote."""
        from grokking.tracking import WandbTracker

        if not self.pending:
            return
        for name in RUN_FILES:
            path = self.out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            if (self.previous / name).exists():
                os.replace(self.previous / name, path)
        if (self.previous / WandbTracker.RUN_ID).is_file():
            os.replace(self.previous / WandbTracker.RUN_ID, self.out_dir / WANDB / WandbTracker.RUN_ID)
        shutil.rmtree(self.previous)
        print(f"restored the previous run in {self.out_dir}", file=sys.stderr)

    def discard(self) -> None:
        """The new run has a result of its own: drop the old run."""
        if self.pending:
            shutil.rmtree(self.previous)


def has_run(out_dir: Path) -> bool:
    return any((out_dir / name).exists() for name in (CHECKPOINT, METRICS, SUMMARY))


def not_extendable(summary: dict[str, Any], epochs: int) -> str | None:
    """Why a finished run cannot be continued to ``epochs`` (``extend=true``), or None if it can: it
    must have completed its whole budget, not stopped early on ``stop_when`` or diverged."""
    if summary["status"] != "completed":
        return f"holds a {summary['status']} run, which cannot be extended; pass overwrite=true to redo it"
    if summary.get("stopped_early") is not None:
        return f"holds a run that stopped early at epoch {summary['epoch']} on its stop_when rule; there is nothing to extend"
    if epochs <= summary["epoch"]:
        return f"has already trained {summary['epoch']} epochs; pass epochs > {summary['epoch']} to extend it"
    return None


def prepare_run_dir(
    out_dir: Path, cfg_dict: dict[str, Any], overwrite: bool, extend: bool = False
) -> tuple[dict[str, Any] | None, bool]:
    """Refuse to clobber a finished run; return the checkpoint to resume from, if any, and whether
    the resumption extends a finished run. With ``overwrite`` the old run is moved aside (see
    :class:`Replacement`); with ``extend`` a run that completed its whole budget resumes from its
    final checkpoint to the larger ``epochs``."""
    replacement = Replacement(out_dir)
    replacement.restore()  # a replacement that never got its first checkpoint (the process died)
    try:
        summary = read_summary(out_dir)
    except RunFileError as e:
        if not overwrite:
            raise ConfigError(f"{e}, or pass overwrite=true") from None
        summary = None
    ckpt_path = out_dir / CHECKPOINT
    extending = summary is not None and summary["status"] in FINISHED and extend and not overwrite
    if extending and (why := not_extendable(summary, cfg_dict["epochs"])):
        raise ConfigError(f"extend=true: {out_dir} {why}")
    if summary is not None and summary["status"] in FINISHED and not overwrite and not extending:
        extendable = not_extendable(summary, max(cfg_dict["epochs"], summary.get("epoch", 0) + 1)) is None
        extend_hint = " extend=true with more epochs," if extendable else ""
        raise ConfigError(
            f"{out_dir} already holds a {summary['status']} run; pass overwrite=true,{extend_hint} or choose another "
            "directory"
        )
    if overwrite:
        if has_run(out_dir):
            replacement.move_aside()
        return None, False
    if not ckpt_path.is_file():
        return None, False
    try:
        ckpt = load_checkpoint(ckpt_path)
    except RunFileError as e:
        raise ConfigError(str(e)) from None
    diffs = config_differences(ckpt["config"], cfg_dict)
    if diffs:
        older = [f"{k}={v}" for k, v in missing_added_keys(ckpt["config"]).items() if k in diffs]
        hint = f" (it was saved before {', '.join(older)} became configurable: add that to resume it)" if older else ""
        raise ConfigError(
            f"{out_dir} holds a run with a different config ({', '.join(diffs)}){hint}; "
            "pass overwrite=true or choose another directory"
        )
    if ckpt["epoch"] > cfg_dict["epochs"]:
        raise ConfigError(
            f"epochs={cfg_dict['epochs']} is fewer than the {ckpt['epoch']} epochs {out_dir} has already trained; "
            f"pass epochs>={ckpt['epoch']} to resume it, overwrite=true, or choose another directory"
        )
    return ckpt, extending


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict[str, Any]:
    import hydra

    return {
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "hydra": hydra.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
    }


def first_epoch(rows: list[dict[str, float]], key: str, threshold: float) -> int | None:
    """The first logged epoch at which ``rows[key] >= threshold``."""
    return next((int(r["epoch"]) for r in rows if r[key] >= threshold), None)


def seed_summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Final metrics and milestones of one replica."""
    if not rows:
        return {}
    final = rows[-1]
    return {
        "final": {k: v for k, v in final.items() if "/" not in k},
        "best_test_acc": max(r["test_acc"] for r in rows),
        "epoch_train_acc_100": first_epoch(rows, "train_acc", 1.0),
        "epoch_test_acc_50": first_epoch(rows, "test_acc", 0.5),
        "epoch_test_acc_95": first_epoch(rows, "test_acc", 0.95),
        "epoch_test_acc_99": first_epoch(rows, "test_acc", 0.99),
        "epoch_sc_50": first_epoch(rows, "sc_fraction", 0.5),
    }


def uniform(values: list[str]) -> str:
    return values[0] if len(set(values)) == 1 else "mixed"


class RunDir:
    """A run directory that has accepted this run. It holds what the training loop hands it: the
    metric rows (``rows``, mirrored into ``metrics.csv``), the parameter snapshots (``snapshots``:
    ``(epoch, (R, P) float32 tensor)`` pairs), how each stretch of epochs was trained
    (``stretches``: a resumed run may change device, ``cpu_kernel`` or code), and writes the
    checkpoint and the summary. Made by :meth:`open`, which refuses a directory it must not write."""

    def __init__(
        self,
        path: Path,
        cfg_dict: dict[str, Any],
        overwrite: bool,
        extend: bool,
        record: Callable[[Path], None] | None = None,
    ):
        self.path, self.cfg_dict, self.record = path, cfg_dict, record
        self.saved, self.extending = prepare_run_dir(path, cfg_dict, overwrite, extend)
        self.replacement = Replacement(path)
        self.rows: list[dict[str, float]] = []
        self.snapshots: list[tuple[int, torch.Tensor]] = []
        self.stretches: list[dict[str, Any]] = []
        self.elapsed_before, self.started = 0.0, time.perf_counter()
        self.writer: MetricsWriter | None = None

    @classmethod
    @contextmanager
    def open(
        cls,
        path: Path,
        cfg_dict: dict[str, Any],
        overwrite: bool,
        extend: bool,
        record: Callable[[Path], None] | None = None,
    ) -> Iterator[RunDir]:
        """``with RunDir.open(...) as run:`` the directory locked for the block; a directory that
        cannot take the run is refused (:class:`ConfigError`) with nothing written. If the block
        fails, a run that ``overwrite=true`` moved aside comes back; a failed write into the
        directory (disk full, read-only, permissions) becomes one :class:`RunFileError` line."""
        check_run_dir(path)  # nothing is written into a directory that is not a run of ours
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{path} cannot be created ({e.strerror}); choose another run directory") from None
        lock = lock_run_dir(path)
        try:
            run = cls(path, cfg_dict, overwrite, extend, record)
            try:
                yield run
            except BaseException:
                run.replacement.restore()  # the new run failed before its first checkpoint: the old one comes back
                raise
        except OSError as e:
            if e.filename is None or path.resolve() not in Path(e.filename).resolve().parents:
                raise
            raise write_failed(Path(e.filename), e) from None
        finally:
            lock.close()

    def describe(self) -> None:
        """Write the run's config (and, through ``record``, e.g. Hydra's record of it)."""
        from omegaconf import OmegaConf

        atomic_write(self.path / CONFIG, OmegaConf.to_yaml(self.cfg_dict).encode())
        if self.record is not None:
            self.record(self.path)

    def resume(self, model: torch.nn.Module, optimizer: Any) -> int:
        """Load the checkpoint the directory holds into ``model``, ``optimizer`` and torch's random
        state, and take back its rows, snapshots and stretches; the epoch to go on from (0 for a
        new run)."""
        from grokking.optim import load_optimizer_state

        ckpt = self.saved
        if ckpt is None:
            return 0
        model.load_state_dict(ckpt["model"])
        load_optimizer_state(optimizer, ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        start, self.rows, self.elapsed_before = ckpt["epoch"], ckpt["rows"], ckpt["elapsed_s"]
        self.stretches = [s for s in ckpt.get("stretches", []) if s["from_epoch"] < start]
        if (self.path / SNAPSHOTS).is_file():  # written before each checkpoint: drop any taken after it
            self.snapshots = [s for s in load_checkpoint(self.path / SNAPSHOTS)["snapshots"] if s[0] < start]
        print(f"resuming {self.path} from epoch {start}", file=sys.stderr)
        return start

    def begin_stretch(self, start: int, device: torch.device, training_step: str, optimizer_step: str) -> None:
        """Record how the epochs from ``start`` on are trained (the commit is read now; the
        summary's top-level ``git_commit`` when it is written) and open ``metrics.csv``."""
        self.stretches.append(
            {
                "from_epoch": start,
                "git_commit": git_commit(),
                "device": str(device),
                "training_step": training_step,  # cpu_kernel's choices: native or torch
                "optimizer_step": optimizer_step,
            }
        )
        self.writer = MetricsWriter(self.path / METRICS, self.rows)

    def start_clock(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds of training, this process's and those of the stretches before it."""
        return self.elapsed_before + time.perf_counter() - self.started

    def append(self, rows: list[dict[str, float]]) -> None:
        """New metric rows: kept for the checkpoint and the summary, and appended to ``metrics.csv``."""
        self.rows.extend(rows)
        self.writer.append(rows)

    def checkpoint(self, epoch: int, model: torch.nn.Module, optimizer: Any, data: Any, seeds: list[int]) -> None:
        """Save the state after ``epoch`` updates (snapshots first, so that none is newer than the
        checkpoint); from now on a run that this one replaces is gone for good."""
        names = model.param_names()
        if self.snapshots:
            save_checkpoint(self.path / SNAPSHOTS, {"param_names": names, "seeds": seeds, "snapshots": self.snapshots})
        save_checkpoint(
            self.path / CHECKPOINT,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "rows": self.rows,
                "rng": {"torch": torch.get_rng_state()},
                "config": self.cfg_dict,
                "seeds": seeds,
                "param_names": names,
                "split": {"train_idx": data.train_idx, "test_idx": data.test_idx},
                "elapsed_s": self.elapsed(),
                "stretches": self.stretches,
            },
        )
        self.replacement.discard()

    def finish(
        self, status: str, epoch: int, seeds: list[int], device: torch.device, stopped_early: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Write ``summary.json`` (and, for an extension, the config it ran with); return the summary."""
        wall = self.elapsed()
        if self.extending:
            self.describe()
        self.writer.sync()  # metrics.csv holds every row, also where it was deleted or cut during the run
        summary = {
            "status": status,
            "epoch": epoch,
            "epochs": self.cfg_dict["epochs"],
            "stopped_early": stopped_early,
            "seeds": seeds,
            # the one choice that trained every epoch, or "mixed" (resumed differently: see stretches)
            **{k: uniform([s[k] for s in self.stretches]) for k in ("training_step", "optimizer_step")},
            "stretches": self.stretches,
            "wall_time_s": wall,
            "epochs_per_s": epoch / wall if wall > 0 else None,
            **environment(device),
            "per_seed": {str(s): seed_summary([r for r in self.rows if r["seed"] == s]) for s in seeds},
        }
        write_json(self.path / SUMMARY, summary)
        self.replacement.discard()
        return summary
