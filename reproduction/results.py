"""Read committed results: ``results/<figure>/<run>/{metrics.csv, summary.json, config.yaml}``.

A run can have independent replicates (another train/test split *and* initialization):
replicate 0 is the run folder itself, replicate k >= 1 lies in ``<root>/replicates/<k>/<figure>/
<run>/`` (``scripts/reproduce.py --replicates N`` makes them). The official code's runs hold one
row group per ``--seed`` in a single folder, and each seed is a replicate.

Every reader takes a ``root``: a results folder (plots: all completed replicates pooled, with a
``replicate`` column) or a :class:`Replicate` (claims: one replicate at a time).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path(__file__).resolve().parent.parent / "results"
REPLICATES = "replicates"


@dataclass(frozen=True)
class Replicate:
    """One independent replicate under a results ``root``: ours by ``index`` (0 is the run folder
    itself), the official code's by ``seed`` (its ``--seed`` sets split and initialization)."""

    root: Path
    index: int = 0
    seed: int | None = None

    @property
    def path(self) -> Path:
        return Path(self.root) / REPLICATES / str(self.index) if self.index else Path(self.root)

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __fspath__(self) -> str:
        return os.fspath(self.path)


Root = Path | Replicate


def replicate_indices(root: Path) -> list[int]:
    """The replicate numbers present under ``root`` (0 always, then ``root/replicates/<k>``)."""
    extra = Path(root) / REPLICATES
    found = sorted(int(p.name) for p in extra.iterdir() if p.name.isdigit()) if extra.is_dir() else []
    return [0, *found]


def replicates(root: Path) -> list[Replicate]:
    """Every replicate of ``root``: ours by index, or, for a folder of official runs (their
    ``summary.json`` say ``"code": "official"``), one per ``--seed`` found in any run."""
    seeds: set[int] = set()
    for path in Path(root).glob("*/*/summary.json"):
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if s.get("code") == "official":
            seeds |= {int(k) for k in s.get("per_seed", {})}
    if seeds:
        return [Replicate(Path(root), seed=s) for s in sorted(seeds)]
    return [Replicate(Path(root), k) for k in replicate_indices(root)]


class MissingRun(FileNotFoundError):
    """A run whose results are absent or unusable (no file, an empty or headerless metrics.csv, a
    corrupt summary.json): figures draw without it, claims count it as missing."""


STATUSES = (
    "completed",
    "diverged",
    "interrupted",
    "stopped",
)  # a run's status in summary.json (stopped: an official run stopped on purpose at its onsets)
FINISHED = ("completed", "diverged")
# damaged runs met by the readers since the last figure was saved: run folder -> why (see damage())
MET_DAMAGED: dict[Path, str] = {}


def damage(path: Path) -> str | None:
    """Why the run in folder ``path`` is damaged, or None: a run is damaged where its summary.json
    does not parse or holds no valid status, or where it says the run finished but its metrics.csv
    does not parse or holds no metric rows. A folder without summary.json is not damaged (the run
    has not started, or was stopped before it wrote one)."""
    if not (Path(path) / "summary.json").is_file():
        return None
    try:
        data = _read_summary(Path(path) / "summary.json")
    except MissingRun as e:
        return "summary.json is not a run summary" if "not a run summary" in str(e) else "summary.json does not parse"
    if data.get("status") not in STATUSES:
        return f"summary.json holds no valid status ({data.get('status')!r})"
    if data["status"] not in FINISHED:
        return None
    if not (Path(path) / "metrics.csv").is_file():
        return "metrics.csv is missing" if not (Path(path) / "metrics.csv").exists() else "metrics.csv is not a file"
    try:
        _metrics(Path(path) / "metrics.csv")
    except MissingRun as e:
        return "metrics.csv " + ("holds no metric rows" if "no metric rows" in str(e) else "does not parse")
    return None


def run_folders(root: Path) -> list[Path]:
    """Every run folder (``<figure>/<run>``, with a summary.json) of every replicate under ``root``."""
    return [
        p.parent
        for k in replicate_indices(Path(root))
        for p in sorted(Replicate(Path(root), k).path.glob("*/*/summary.json"))
    ]


def damaged_runs(root: Path = RESULTS) -> list[tuple[Path, str]]:
    """(run folder, why) of every damaged run under ``root`` (see :func:`damage`): the readers count
    them as missing, so claims lose a replicate of n, figures mark them, and
    ``scripts/reproduce.py --plan`` plans them again."""
    return [(p, why) for p in run_folders(root) if (why := damage(p)) is not None]


def damage_warning(root: Path = RESULTS) -> str | None:
    """One line naming the damaged runs under ``root`` (None where there are none), for reports."""
    found = damaged_runs(root)
    if not found:
        return None
    names = [f"{run_label(p)} ({why})" for p, why in found]
    shown = "; ".join(names[:5]) + (f"; and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"**Warning:** {len(found)} damaged run{'s' * (len(found) > 1)} excluded from n (their files do not "
        f"parse; `scripts/reproduce.py --plan` plans them again): {shown}"
    )


def run_label(path: Path) -> str:
    """``figure/run``, or ``replicates/<k>/figure/run`` for a replicate k >= 1."""
    parts = Path(path).parts
    return "/".join(parts[-4:] if len(parts) >= 4 and parts[-4] == REPLICATES else parts[-2:])


def note_damaged(path: Path) -> None:
    """Record the run folder ``path`` in :data:`MET_DAMAGED` where it is damaged (for the figure's mark)."""
    if (why := damage(path)) is not None:
        MET_DAMAGED[Path(path)] = why


@cache
def _metrics(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise MissingRun(f"{path}: {e}") from None
    if not {"epoch", "seed"} <= set(df.columns) or df.empty:
        raise MissingRun(f"{path} holds no metric rows")
    return df


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MissingRun(f"{path}: {e}") from None
    if not isinstance(data, dict):
        raise MissingRun(f"{path} is not a run summary")
    return data


def run_dir(figure: str, run: str, root: Root) -> Path:
    base = root.path if isinstance(root, Replicate) else Path(root)
    return base / figure / run


def _status(path: Path) -> str | None:
    """The run's status; None where it has none, or where the run is damaged (:func:`damage`)."""
    try:
        status = _read_summary(path / "summary.json")["status"]
    except (MissingRun, KeyError):
        note_damaged(path)
        return None
    if status not in STATUSES or (status in FINISHED and damage(path) is not None):
        note_damaged(path)
        return None
    return status


def completed(path: Path) -> bool:
    """Whether the run in folder ``path`` reached its end (``completed`` or ``diverged``)."""
    return _status(path) in ("completed", "diverged")


def logged(figure: str, run: str, root: Replicate) -> tuple[pd.DataFrame, bool]:
    """One replicate's metric rows as far as the run got, and whether it finished (``completed``
    or ``diverged``). The rows of a run that stopped early are the start of its trajectory: they
    answer what happens before its last logged epoch (an onset it reached, a value at an epoch it
    passed), never what happens at its end."""
    path = run_dir(figure, run, root)
    if _status(path) is None:
        raise MissingRun(f"{figure}/{run} has no summary.json")
    df = _metrics(path / "metrics.csv")
    if root.seed is None:
        return df, completed(path)
    df = df[df.seed == root.seed]
    if df.empty:
        raise MissingRun(f"{figure}/{run} has no rows of seed {root.seed}")
    return df, summary(figure, run, root)["status"] in ("completed", "diverged")


def metrics(figure: str, run: str, root: Root = RESULTS) -> pd.DataFrame:
    """The run's metric rows (all seeds; filter on the ``seed`` column). With a results folder, the
    rows of every completed replicate are appended (column ``replicate``); with a
    :class:`Replicate` (what claims read), that replicate's rows only, and only once its run has
    finished (``completed`` or ``diverged``): an interrupted run's last row is not its final value
    (:func:`logged` gives its rows so far)."""
    if isinstance(root, Replicate):
        df, finished = logged(figure, run, root)
        if not finished:  # a claim on the end of a run reads only runs that reached their end
            raise MissingRun(f"{figure}/{run} did not finish (see its summary.json)")
        return df
    first, zero = None, run_dir(figure, run, root)  # replicate 0: whatever rows it has, unless it is damaged
    if damage(zero) is not None:
        note_damaged(zero)
    else:
        try:
            first = _metrics(zero / "metrics.csv")
        except MissingRun:
            pass
    frames = [] if first is None else [(0, first)]
    for k in replicate_indices(Path(root))[1:]:
        path = run_dir(figure, run, Replicate(Path(root), k))
        if completed(path) and (path / "metrics.csv").is_file():
            try:
                frames.append((k, _metrics(path / "metrics.csv")))
            except MissingRun:
                continue
    if not frames:
        raise MissingRun(f"{figure}/{run} has no readable metric rows under {root}")
    if len(frames) == 1 and frames[0][0] == 0:
        return first
    return pd.concat([df.assign(replicate=k) for k, df in frames], ignore_index=True)


def seed_status(summary: dict[str, Any], seed: str) -> str:
    """One seed's status in a run summary: its own where it has one (an official run's seeds may
    differ), else the run's."""
    return summary.get("per_seed", {}).get(seed, {}).get("status", summary["status"])


def summary(figure: str, run: str, root: Root = RESULTS) -> dict[str, Any]:
    s = _read_summary(run_dir(figure, run, root) / "summary.json")
    if isinstance(root, Replicate) and root.seed is not None:
        if str(root.seed) not in s.get("per_seed", {}):
            raise MissingRun(f"{figure}/{run} has no seed {root.seed}")
        seed = s["per_seed"][str(root.seed)]
        s = {**s, "status": seed_status(s, str(root.seed)), "per_seed": {str(root.seed): seed}}
    return s


def exists(figure: str, run: str, root: Root = RESULTS) -> bool:
    """Whether the run has metric rows to draw (for a :class:`Replicate` of the official code: rows
    of its seed)."""
    try:
        metrics(figure, run, root)
    except MissingRun:
        return False
    return True


def per_seed(figure: str, run: str, key: str, root: Root = RESULTS) -> list[Any]:
    """One summary value per seed, e.g. ``per_seed("fig2", "frac0.7_float64", "best_test_acc")``;
    keys of the final row are read from ``final`` (e.g. ``"test_acc"``). Onset epochs are better
    read with :func:`onsets`, which applies the same rule to every run."""
    values = []
    for s in summary(figure, run, root)["per_seed"].values():
        values.append(s[key] if key in s else s["final"][key])
    return values


def final_mean(figure: str, run: str, column: str, root: Root = RESULTS) -> float:
    """Mean over seeds of the last logged value of ``column``."""
    df = metrics(figure, run, root)
    return float(df[df.epoch == df.epoch.max()][column].mean())


def nearest_rows(df: pd.DataFrame, epoch: int) -> pd.DataFrame:
    """Each seed's row at its logged epoch nearest ``epoch`` (the later of two equally near): the
    one rule by which both codes are read "at epoch E" (the official loop logs epoch index e after
    e + 1 updates, so its rows sit at 1, 51, ..., 301, ... where ours sit at 0, 50, ..., 300)."""
    keys = [k for k in ("replicate", "seed") if k in df]
    groups = df.groupby(keys, sort=False) if keys else [(None, df)]
    picked = []
    for _, rows in groups:
        distance = (rows.epoch - epoch).abs()
        picked.append(rows[rows.epoch == rows.epoch[distance == distance.min()].max()])
    return pd.concat(picked)


def value_at(figure: str, run: str, column: str, epoch: int, root: Root = RESULTS) -> float:
    """Mean over seeds of ``column`` at each seed's logged epoch nearest ``epoch``
    (:func:`nearest_rows`). A replicate that stopped early answers once it has logged ``epoch`` or a
    later one."""
    if isinstance(root, Replicate):
        df, finished = logged(figure, run, root)
        if not finished and df.epoch.max() < epoch:
            raise MissingRun(f"{figure}/{run} stopped at epoch {df.epoch.max()}, before epoch {epoch}")
    else:
        df = metrics(figure, run, root)
    return float(nearest_rows(df, epoch)[column].mean())


HOLD = 2  # logged epochs in a row that must pass a threshold for an onset


def onset(epochs: list[int], values: list[float], threshold: float, hold: int = HOLD, ended: bool = True) -> int | None:
    """The onset rule used for every milestone of ours and of the official runs: the first logged
    epoch from which ``values >= threshold`` holds for ``hold`` logged epochs in a row (a crossing
    in the last logged epochs, with fewer rows left to confirm it, counts when the run ``ended``
    there, not when it stopped early). A single noisy logged epoch above the threshold is not an
    onset."""
    run = 0
    for i, v in enumerate(values):
        run = run + 1 if v >= threshold else 0
        if run == hold or (ended and run and i == len(values) - 1):
            return int(epochs[i - run + 1])
    return None


def onsets(figure: str, run: str, column: str, threshold: float, root: Root = RESULTS) -> list[int | None]:
    """:func:`onset` of ``column`` per seed of the run (per replicate when ``root`` is a folder
    with replicates: seeds of different replicates are told apart by ``replicate``). A replicate
    that stopped early answers for the seeds whose onset it logged, and is missing otherwise: it
    cannot tell "later" from "never"."""
    if isinstance(root, Replicate):
        df, finished = logged(figure, run, root)
    else:
        df, finished = metrics(figure, run, root), True
    keys = ["replicate", "seed"] if "replicate" in df else ["seed"]
    found = [
        onset(rows.epoch.tolist(), rows[column].tolist(), threshold, ended=finished)
        for _, rows in df.groupby(keys, sort=False)
    ]
    if not finished and None in found:
        raise MissingRun(f"{figure}/{run} stopped at epoch {df.epoch.max()}, before {column} reached {threshold}")
    return found


def first_epoch(figure: str, run: str, column: str, threshold: float, root: Root = RESULTS) -> float | None:
    """Mean over seeds of the onset (:func:`onset`) of ``column >= threshold`` (None if a seed never
    reaches it)."""
    epochs = onsets(figure, run, column, threshold, root)
    return None if None in epochs else sum(epochs) / len(epochs)
