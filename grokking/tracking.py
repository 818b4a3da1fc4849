"""Experiment trackers. ``none`` does nothing; ``wandb`` mirrors metrics.csv to Weights & Biases.

A tracker gets every metric row as it is written to ``metrics.csv`` (``log``) and the run summary
at the end (``finish``); ``abort`` closes it when training raises. The wandb run:

- keeps its files in the run directory (``<out_dir>/wandb/``), offline unless ``logger.mode=online``;
- has the resolved config as its config and each metrics.csv row as one ``log`` call, under the
  same column names, with ``epoch`` as the x-axis;
- is its own run object (``reinit="create_new"``), never the global ``wandb.run``, so jobs that
  share a worker process cannot log into each other's runs;
- is resumed (same run id) when training resumes from a checkpoint in the same directory.

wandb is imported only when ``logger=wandb`` is asked for, so it is an optional dependency.

:func:`progress` is the run's progress display: tqdm's bar, or, in a job of a sweep whose launcher
runs jobs side by side (``launcher=local``, submitit), whole lines naming the job, so that the
jobs' progress does not interleave on one terminal line and reads cleanly in a job's log file.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grokking.config import LoggerConfig
from grokking.errors import choice
from grokking.registry import Registry


@dataclass(frozen=True)
class TrackerEntry:
    """A logger option: ``build(cfg, resolved_config, out_dir)`` returns an object with ``log``,
    ``finish`` and ``abort``; ``package``: a module it imports; ``check(cfg)`` raises a
    :class:`grokking.errors.ConfigError` on a bad value (both before any compute)."""

    build: Callable[[LoggerConfig, dict[str, Any], Path], Any]
    package: str | None = None
    check: Callable[[LoggerConfig], None] | None = None


TRACKERS: Registry[TrackerEntry] = Registry("logger.name", TrackerEntry)


@TRACKERS.register("none")
class NullTracker:
    def __init__(self, *args: Any):
        pass

    def log(self, rows: list[dict[str, float]]) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass

    def abort(self) -> None:
        pass


def hydra_job() -> tuple[str | None, str | None]:
    """(sweep directory, job overrides) when called inside a Hydra -m job, else (None, None)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None, None
    return hc.sweep.dir, hc.job.override_dirname or None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


WANDB_MODES = ("offline", "online", "disabled")


@TRACKERS.register("wandb", package="wandb", check=lambda cfg: choice("logger.mode", cfg.mode, WANDB_MODES))
class WandbTracker:
    RUN_ID = "run_id"  # file in <out_dir>/wandb/ that lets a resumed run continue the same wandb run

    def __init__(self, cfg: LoggerConfig, config: dict[str, Any], out_dir: Path):
        import wandb

        sweep_dir, job_name = hydra_job()
        id_file = out_dir / "wandb" / self.RUN_ID
        id_file.parent.mkdir(parents=True, exist_ok=True)
        resuming = id_file.is_file()
        run_id = id_file.read_text().strip() if resuming else secrets.token_hex(4)
        id_file.write_text(run_id + "\n")
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group or sweep_dir,
            name=job_name or out_dir.name,
            tags=list(cfg.tags),
            mode=cfg.mode,
            dir=str(out_dir),
            id=run_id,
            resume="allow" if resuming else None,
            config=config,
            reinit="create_new",
            settings=wandb.Settings(console="off"),
        )
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")
        self.finished = False

    def log(self, rows: list[dict[str, float]]) -> None:
        for row in rows:
            self.run.log(row)

    def finish(self, summary: dict[str, Any]) -> None:
        if self.finished:
            return
        try:
            self.run.summary.update(flatten(summary, "summary/"))  # apart from the metrics
        finally:
            self.close(exit_code=0 if summary["status"] == "completed" else 1)

    def abort(self) -> None:
        self.close(exit_code=1)

    def close(self, exit_code: int) -> None:
        if not self.finished:
            self.finished = True
            self.run.finish(exit_code=exit_code)


def build_tracker(cfg: LoggerConfig, config: dict[str, Any], out_dir: Path) -> Any:
    return TRACKERS[cfg.name].build(cfg, config, out_dir)


PROGRESS_EVERY_S = 30.0  # a parallel job's progress: one line at most this often, and one when it ends


def parallel_job() -> str | None:
    """``job <num> (<overrides>)`` inside a job of a -m sweep whose launcher runs jobs side by side
    (any launcher but Hydra's basic one, which runs them one after another), else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN or str(hc.launcher.get("_target_", "")).endswith(".BasicLauncher"):
        return None
    swept = swept_keys(Path(hc.sweep.dir))
    mine = [o for o in hc.overrides.task if o.split("=", 1)[0].lstrip("+~") in swept]
    return f"job {hc.job.num} ({' '.join(mine) or hc.job.override_dirname or 'no overrides'})"


def swept_keys(sweep_dir: Path) -> set[str]:
    """The keys the sweep varies (``a,b``, ``choice()``, ``range()``, ``glob()`` in its multirun.yaml);
    empty when it cannot be read."""
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        task = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]["overrides"]["task"]
        return {o.key_or_group for o in OverridesParser.create().parse_overrides(task) if o.is_sweep_override()}
    except Exception:  # no multirun.yaml, or one this reader does not understand: name every override
        return set()


class ProgressLines:
    """tqdm's interface as the training loop uses it (iterate, ``set_postfix``, ``close``), written as
    whole lines: ``<label>: epoch 150/300 (50 %, 812 epochs/s) loss=... train=... test=... SC=...``,
    one every ``every`` seconds and one at the end, each in a single write."""

    def __init__(
        self,
        iterable: Iterable,
        initial: int,
        total: int,
        label: str,
        every: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.iterable, self.n, self.total, self.label = iterable, initial, total, label
        self.every, self.clock = every, clock
        self.start_n, self.start = initial, clock()
        self.last = self.start
        self.postfix: dict[str, str] = {}
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.n += 1
            if self.clock() - self.last >= self.every:
                self.write()

    def set_postfix(self, values: dict[str, str], refresh: bool = False) -> None:
        self.postfix = dict(values)

    def write(self) -> None:
        now = self.clock()
        self.last = now
        rate = (self.n - self.start_n) / (now - self.start) if now > self.start else None
        speed = f", {rate:.3g} epochs/s" if rate else ""
        percent = 100 * self.n / self.total if self.total else 100
        values = "".join(f" {k}={v}" for k, v in self.postfix.items())
        sys.stderr.write(f"{self.label}: epoch {self.n}/{self.total} ({percent:.0f} %{speed}){values}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.write()


def progress(iterable: Iterable, initial: int, total: int) -> Any:
    """The training loop's progress: lines naming the job in a parallel sweep's job, else tqdm's bar."""
    if (label := parallel_job()) is not None:
        return ProgressLines(iterable, initial, total, label)
    from tqdm.auto import tqdm

    return tqdm(iterable, initial=initial, total=total, desc="train", mininterval=1.0, dynamic_ncols=True)
