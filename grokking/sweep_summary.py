"""One table for a whole sweep: ``python scripts/summarize.py multirun/2025-01-01/12-00-00``.

Reads the jobs of the sweep that last ran in a Hydra multirun directory: the jobs its
``multirun.yaml`` launched (expanded as Hydra expands ``a,b``, ``choice()``, ``range()`` and
``glob()``), each with the swept values it was launched with. Without a readable multirun.yaml,
every ``<sweep>/<job>/`` with a ``.hydra/overrides.yaml`` is a job. A second sweep into the same
directory is summarized as itself: job directories it did not launch are left out (and named), and
a job whose directory holds another sweep's run of a different config is listed as
``holds another run``, without that run's numbers. It writes, into the sweep directory:

- ``sweep_summary.csv`` and ``sweep_summary.md``: one row per job (per seed when a job trains
  several seeds at once) with the swept values, status, final and best test accuracy, the epochs of
  100 % train accuracy and of 50 % / 95 % test accuracy, and the final SC fraction;
- ``sweep_summary.png``: final test accuracy over the two main swept axes (mean over seeds and
  over any further axes), with the runs that did not complete marked.

A job without ``summary.json`` (killed, timed out or still running) is listed as ``incomplete``
with the milestones of the rows its ``metrics.csv`` holds; one without metrics as ``failed``; one
without a directory as ``not started``; one whose summary.json cannot be read as
``unreadable summary`` (with the milestones of its metrics.csv). Diverged and interrupted runs keep
their status. Nothing is dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from grokking.checkpoint import METRICS, SUMMARY
from grokking.paths import CONF_DIR

if TYPE_CHECKING:
    from grokking.cli import JobFailed

IGNORED_KEYS = ("launcher", "hydra.")  # overrides that choose how jobs run, not what they compute
ROW_KEYS = ("seed",)  # swept keys that the rows hold themselves (one row per seed)
ANOTHER_RUN = "holds another run"  # a job directory holding the run of another sweep (refused or not yet run)
COLUMNS = [
    "status",
    "epoch",
    "final_test_acc",
    "best_test_acc",
    "final_train_acc",
    "epoch_train_acc_100",
    "epoch_test_acc_50",
    "epoch_test_acc_95",
    "final_sc_fraction",
    "wall_time_s",
]


def config_loader():
    """Hydra's config loader over ``conf/``: the override parser needs it to expand ``glob()`` over a group."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path

    return ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF_DIR)))


def launched_jobs(sweep_dir: Path) -> tuple[list[list[str]], bool]:
    """The jobs the sweep launched (each its list of overrides, in job-number order), expanded from
    ``multirun.yaml`` as Hydra's basic sweeper expands them (``a,b``, ``choice()``, ``range()``,
    ``glob()``), and whether their directories are named by job number (``hydra.sweep.subdir``).
    ``([], True)`` where multirun.yaml is missing or cannot be read."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        hydra = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]
        by_number = str(hydra["sweep"]["subdir"]) == "${hydra.job.num}"
        parser = OverridesParser.create(config_loader=config_loader())
        parsed = parser.parse_overrides(list(hydra["overrides"]["task"]))
        return BasicSweeper.split_arguments(parsed, None)[0], by_number
    except Exception:  # no multirun.yaml, or one this reader does not understand: the directories alone
        return [], True


def as_dict(overrides: list[str]) -> dict[str, str]:
    """Overrides as ``{key: value}`` (values as typed), without the ones that choose how jobs run."""
    pairs = (o.split("=", 1) for o in overrides if isinstance(o, str) and "=" in o)
    return {k.lstrip("+~"): v for k, v in pairs if not k.lstrip("+~").startswith(IGNORED_KEYS)}


def recorded_overrides(job_dir: Path) -> list[str] | None:
    """The overrides a job directory's run was started with (``.hydra/overrides.yaml``), or None."""
    try:
        overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return None
    return overrides if isinstance(overrides, list) else None


@dataclass
class Job:
    """One job of a sweep: its directory and the overrides the sweep launched it with (from
    multirun.yaml; None when the sweep's job list cannot be read and the directory is all we have)."""

    name: str
    path: Path
    launched: list[str] | None = None

    def overrides(self) -> dict[str, str]:
        return as_dict(self.launched if self.launched is not None else recorded_overrides(self.path) or [])

    def holds_another_run(self) -> bool:
        """Whether the directory holds a run that is not this job's: one recorded with other overrides
        (e.g. by an earlier sweep into the same directory) whose config also differs (a job of the
        same config is skipped, and the earlier run is its result)."""
        recorded = recorded_overrides(self.path)
        if self.launched is None or recorded is None or as_dict(recorded) == as_dict(self.launched):
            return False
        from grokking.train import completed_with_same_config

        try:
            return not completed_with_same_config(self.path, compose_job(self.launched))
        except Exception:  # a launched job that no longer composes: its directory cannot be its run
            return True


def compose_job(overrides: list[str]) -> DictConfig:
    """A job's config as its sweep composed it; also at the end of a sweep, inside the Hydra app
    (whose config search path is already set)."""
    from hydra.core.global_hydra import GlobalHydra

    from grokking.cli import compose

    if not GlobalHydra.instance().is_initialized():
        return compose(overrides)
    from hydra import compose as hydra_compose

    return hydra_compose("config", overrides=list(overrides))


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Directories of a sweep holding a Hydra job (``<job>/.hydra/overrides.yaml``), in job-number order."""
    found = (p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml"))
    return sorted(found, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else p.name))


def sweep_jobs(sweep_dir: Path) -> tuple[list[Job], list[Path]]:
    """The jobs of the sweep that last ran in ``sweep_dir`` (its ``multirun.yaml``), and the job
    directories there that are not among them (left by an earlier sweep into the same directory).
    Without a readable multirun.yaml, every job directory found is a job."""
    launched, by_number = launched_jobs(sweep_dir)
    found = job_dirs(sweep_dir)
    if not launched:
        return [Job(p.name, p) for p in found], []
    if by_number:
        jobs = [Job(str(num), sweep_dir / str(num), overrides) for num, overrides in enumerate(launched)]
    else:  # named subdirectories: a job's directory is the one recorded with its overrides
        named = {tuple(sorted(as_dict(recorded_overrides(p) or []).items())): p for p in found}
        jobs = []
        for num, overrides in enumerate(launched):
            path = named.get(tuple(sorted(as_dict(overrides).items())))
            jobs.append(Job(path.name, path, overrides) if path else Job(f"#{num}", sweep_dir / f"#{num}", overrides))
    ours = {job.path for job in jobs}
    return jobs, [p for p in found if p not in ours]


def read_metrics(path: Path) -> pd.DataFrame | None:
    """A metrics.csv with rows, or None (missing, empty, headerless or unreadable)."""
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    return df if {"epoch", "seed", "test_acc"} <= set(df.columns) and len(df) else None


def swept_keys(overrides: list[dict[str, str]]) -> list[str]:
    """Override keys whose value differs between jobs, in command-line order (all keys for one job)."""
    keys = list(dict.fromkeys(k for o in overrides for k in o))
    if len(overrides) <= 1:
        return keys
    return [k for k in keys if len({o.get(k) for o in overrides}) > 1]


def job_rows(job_dir: Path) -> list[dict[str, Any]]:
    """One row per seed: status and milestones from summary.json, else from metrics.csv."""
    from grokking.train import seed_summary

    if not job_dir.is_dir():
        return [{"seed": None, "status": "not started"}]
    summary_path = job_dir / SUMMARY
    summary = None
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
            status, epoch, wall = summary["status"], summary["epoch"], summary.get("wall_time_s")
            per_seed = dict(summary["per_seed"])
        except (OSError, ValueError, KeyError, TypeError):
            summary = None
    if summary is None:
        df = read_metrics(job_dir / METRICS)
        unreadable = summary_path.is_file()
        if df is None:
            return [{"seed": None, "status": "unreadable summary" if unreadable else "failed"}]
        status = "unreadable summary" if unreadable else "incomplete"
        epoch, wall = int(df["epoch"].max()) + 1, None
        per_seed = {str(s): seed_summary(g.to_dict("records")) for s, g in df.groupby("seed")}
    rows = []
    for seed, s in per_seed.items():
        final = s.get("final", {})
        rows.append(
            {
                "seed": int(seed),
                "status": status,
                "epoch": epoch,
                "final_test_acc": final.get("test_acc"),
                "best_test_acc": s.get("best_test_acc"),
                "final_train_acc": final.get("train_acc"),
                "epoch_train_acc_100": s.get("epoch_train_acc_100"),
                "epoch_test_acc_50": s.get("epoch_test_acc_50"),
                "epoch_test_acc_95": s.get("epoch_test_acc_95"),
                "final_sc_fraction": final.get("sc_fraction"),
                "wall_time_s": wall,
            }
        )
    return rows


def summarize(sweep_dir: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The sweep table and its swept keys. ``table.attrs["not_in_sweep"]`` names the job
    directories that are not jobs of the sweep (left by an earlier sweep into the directory)."""
    sweep_dir = Path(sweep_dir)
    jobs, strays = sweep_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"{sweep_dir} holds no Hydra job directories (<job>/.hydra/overrides.yaml)")
    overrides = [job.overrides() for job in jobs]
    keys = swept_keys(overrides)
    columns = [k for k in keys if k not in ROW_KEYS]  # a swept seed is the rows' own seed column
    records = []
    for job, o in zip(jobs, overrides):
        rows = [{"seed": None, "status": ANOTHER_RUN}] if job.holds_another_run() else job_rows(job.path)
        for row in rows:
            if row["seed"] is None and "seed" in o:
                row = {**row, "seed": o["seed"]}
            records.append({"job": job.name, **{k: o.get(k) for k in columns}, **row})
    table = pd.DataFrame.from_records(records, columns=["job", *columns, "seed", *COLUMNS])
    for col in ("seed", "epoch", "epoch_train_acc_100", "epoch_test_acc_50", "epoch_test_acc_95"):
        table[col] = pd.to_numeric(table[col]).astype("Int64")  # integers with gaps (never reached) shown as <NA>
    table.attrs["not_in_sweep"] = [p.name for p in strays]
    return table, keys


FAILED = ("failed", ANOTHER_RUN)  # statuses of jobs that did not run


def job_label(table: pd.DataFrame, keys: list[str], job: str) -> str:
    """A job's swept overrides, ``key=value ...`` (``–`` for a sweep of one job without overrides)."""
    rows = table[table["job"].astype(str) == str(job)]
    if rows.empty:
        return "–"
    first = rows.iloc[0]
    swept = [f"{k}={first[k]}" for k in keys if k in rows and not (k == "seed" and len(rows) > 1)]
    return " ".join(swept) or "–"


def mean_cell(values: pd.Series) -> str:
    values = pd.to_numeric(values).dropna()
    return f"{values.mean():.3f}" if len(values) else "–"


def compact(table: pd.DataFrame, keys: list[str]) -> str:
    """The sweep in a few aligned lines, one per job: its swept overrides, status and final train and
    test accuracy (the mean over its seeds when it trains several)."""
    lines = [["job", "overrides", "status", "train_acc", "test_acc"]]
    several = False
    for job, rows in table.groupby("job", sort=False):
        several |= len(rows) > 1
        status = ",".join(dict.fromkeys(rows["status"]))
        accs = [mean_cell(rows[col]) for col in ("final_train_acc", "final_test_acc")]
        lines.append([str(job), job_label(table, keys, job), status, *accs])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    if several:
        text.append("(accuracies of jobs that train several seeds are means over their seeds)")
    return "\n".join(text) + "\n"


def failed_jobs(table: pd.DataFrame) -> list[str]:
    """The jobs of the table that failed: no results, or a directory holding another run."""
    return list(dict.fromkeys(table.loc[table["status"].isin(FAILED), "job"].astype(str)))


def to_markdown(table: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return "–"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.astype(object).itertuples(index=False)]
    return "\n".join(lines) + "\n"


def axis_order(values: pd.Series) -> list[str]:
    """Distinct values, numerically sorted when they are numbers."""
    distinct = list(dict.fromkeys(values.astype(str)))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


def plot(table: pd.DataFrame, keys: list[str], path: Path, x: str | None = None, y: str | None = None) -> None:
    """Final test accuracy over the x (and y) swept axes; cells of runs that did not complete say why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = x or (keys[0] if keys else None)
    y = y or next((k for k in keys if k != x), None)
    data = table.assign(final_test_acc=pd.to_numeric(table["final_test_acc"]))
    if x is None:
        data = data.assign(run="all")
        x = "run"
    xs = axis_order(data[x])
    ys = axis_order(data[y]) if y else [""]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(xs), 1.2 + 0.8 * len(ys)))
    grid = [[math.nan] * len(xs) for _ in ys]
    for j, yv in enumerate(ys):
        for i, xv in enumerate(xs):
            cell = data[data[x].astype(str) == xv]
            if y:
                cell = cell[cell[y].astype(str) == yv]
            if cell.empty:
                continue
            grid[j][i] = cell["final_test_acc"].mean()
            acc = "–" if math.isnan(grid[j][i]) else f"{grid[j][i]:.2f}"
            other = sorted(set(cell["status"]) - {"completed"})
            color = "black" if grid[j][i] >= 0.5 else "white"  # readable on the colormap (NaN: white)
            ax.text(i, j, "\n".join([acc, *other]), ha="center", va="center", fontsize=8, color=color)
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto", alpha=0.85)
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x)
    ax.set_ylabel(y or "")
    ax.set_title("final test accuracy")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_summary(sweep_dir: str | Path, x: str | None = None, y: str | None = None) -> pd.DataFrame:
    """Write sweep_summary.{csv,md,png} into the sweep directory and return the table."""
    sweep_dir = Path(sweep_dir)
    table, keys = summarize(sweep_dir)
    for flag, key in (("--x", x), ("--y", y)):
        if key is not None and key not in keys:
            raise ValueError(
                f"{flag} {key} is not a swept key of {sweep_dir}; choose one of: {', '.join(keys) or '(none: one job)'}"
            )
    table.to_csv(sweep_dir / "sweep_summary.csv", index=False)
    (sweep_dir / "sweep_summary.md").write_text(to_markdown(table))
    plot(table, keys, sweep_dir / "sweep_summary.png", x, y)
    return table


# The sweep table at the end of a -m sweep (the Hydra callback of conf/config.yaml) -----------------

SWEEP_DIR: Path | None = None  # the directory of the -m sweep this process runs, once it started


class SweepTable(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/config.yaml): when a -m sweep ends, one line per
    job with its swept overrides, status and final accuracies. A sweep whose jobs failed prints it
    from ``grokking.cli.report_errors`` (this callback hands it :func:`failed_sweep_line` when the
    sweep starts), before the error line that names them."""

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        from grokking import cli

        global SWEEP_DIR
        SWEEP_DIR = Path(config.hydra.sweep.dir)
        cli.failed_sweep_line = failed_sweep_line

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        sweep_dir = SWEEP_DIR or Path(config.hydra.sweep.dir)
        try:
            print_sweep_table(sweep_dir)
        except Exception as err:  # the table is a convenience: the sweep itself succeeded
            print(
                f"no sweep table for {sweep_dir} ({err}); try python scripts/summarize.py {sweep_dir}", file=sys.stderr
            )


def print_sweep_table(sweep_dir: Path) -> tuple[object, list[str]]:
    """Print the sweep's compact table (stdout); returns the full table and its swept keys."""
    table, keys = summarize(sweep_dir)
    counts = table.drop_duplicates("job")["status"].value_counts()
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    print(f"sweep {sweep_dir}: {table['job'].nunique()} jobs, {status}")
    print(compact(table, keys), end="")
    print(f"full table and plot: python scripts/summarize.py {sweep_dir}", flush=True)
    return table, keys


def failed_sweep_line(err: JobFailed) -> str:
    """One line naming every failed job of the sweep (after its table), or ``err``'s own line
    where the sweep's directory cannot be read."""
    if SWEEP_DIR is None:
        return str(err)
    try:
        table, keys = print_sweep_table(SWEEP_DIR)
    except Exception:  # the error line matters more than the table
        return str(err)
    failed = failed_jobs(table)
    if err.job is not None and err.job not in failed:
        failed.append(err.job)
    if len(failed) <= 1:
        return str(err)
    named = ", ".join(f"job {job} ({job_label(table, keys, job)})" for job in failed)
    return (
        f"{len(failed)} of {table['job'].nunique()} jobs of the sweep failed: {named}; the other jobs ran "
        "(see each job's error above)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun directory, e.g. multirun/2025-01-01/12-00-00")
    parser.add_argument("--x", help="swept key on the plot's x axis (default: the first swept key)")
    parser.add_argument("--y", help="swept key on the plot's y axis (default: the second swept key)")
    args = parser.parse_args(argv)
    try:
        table = write_summary(args.sweep_dir, args.x, args.y)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as err:
        print(f"error: cannot write the summary into {args.sweep_dir} ({err.strerror})", file=sys.stderr)
        raise SystemExit(2) from None
    print(to_markdown(table), end="")
    if strays := table.attrs.get("not_in_sweep"):
        print(
            f"left out {', '.join(strays)}: job directories of an earlier sweep into {args.sweep_dir}, not jobs of "
            "the sweep its multirun.yaml describes",
            file=sys.stderr,
        )
    print(f"wrote {args.sweep_dir}/sweep_summary.csv, .md and .png")


if __name__ == "__main__":
    main()
