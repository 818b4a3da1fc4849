"""One table for a whole sweep: ``python scripts/summarize.py multirun/2025-01-01/12-00-00``.

Reads every job of a Hydra multirun directory: the jobs the sweep launched (expanded from its
``multirun.yaml``) and every ``<sweep>/<job>/`` with a ``.hydra/overrides.yaml``. It writes, into
the sweep directory:

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
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from grokking.checkpoint import METRICS, SUMMARY

IGNORED_KEYS = ("launcher", "hydra.")  # overrides that choose how jobs run, not what they compute
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


def launched_jobs(sweep_dir: Path) -> dict[Path, list[str]]:
    """The jobs the sweep launched, ``{job directory: overrides}`` in job-number order, expanded from
    ``multirun.yaml`` as Hydra's basic sweeper expands them (empty where it cannot be read)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        hydra = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]
        if str(hydra["sweep"]["subdir"]) != "${hydra.job.num}":
            return {}
        parsed = OverridesParser.create().parse_overrides(list(hydra["overrides"]["task"]))
        batches = BasicSweeper.split_arguments(parsed, None)[0]
    except Exception:  # no multirun.yaml, or one this reader does not understand: the directories alone
        return {}
    return {sweep_dir / str(num): overrides for num, overrides in enumerate(batches)}


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories of a sweep (launched or found), in job-number order."""
    jobs = {*launched_jobs(sweep_dir), *(p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml"))}
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else p.name))


def job_overrides(job_dir: Path, launched: dict[Path, list[str]] | None = None) -> dict[str, str]:
    """The job's command-line overrides as ``{key: value}`` (values as typed)."""
    path = job_dir / ".hydra" / "overrides.yaml"
    try:
        overrides = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError):
        overrides = (launched or {}).get(job_dir, [])
    pairs = (o.split("=", 1) for o in overrides if isinstance(o, str) and "=" in o)
    return {k.lstrip("+~"): v for k, v in pairs if not k.lstrip("+~").startswith(IGNORED_KEYS)}


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
    """The sweep table and its swept keys."""
    sweep_dir = Path(sweep_dir)
    jobs = job_dirs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"{sweep_dir} holds no Hydra job directories (<job>/.hydra/overrides.yaml)")
    launched = launched_jobs(sweep_dir)
    overrides = [job_overrides(j, launched) for j in jobs]
    keys = swept_keys(overrides)
    records = [
        {"job": job.name, **{k: o.get(k) for k in keys}, **row}
        for job, o in zip(jobs, overrides)
        for row in job_rows(job)
    ]
    table = pd.DataFrame.from_records(records, columns=["job", *keys, "seed", *COLUMNS])
    for col in ("seed", "epoch", "epoch_train_acc_100", "epoch_test_acc_50", "epoch_test_acc_95"):
        table[col] = table[col].astype("Int64")  # integers with gaps (never reached) shown as <NA>
    return table, keys


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
    print(f"wrote {args.sweep_dir}/sweep_summary.csv, .md and .png")


if __name__ == "__main__":
    main()
