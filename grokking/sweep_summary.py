"""One table for a whole sweep: ``python scripts/summarize.py multirun/2025-01-01/12-00-00``.

Reads every job directory of a Hydra multirun directory (``<sweep>/<job number>/`` with its
``.hydra/overrides.yaml``) and writes, into the sweep directory:

- ``sweep_summary.csv`` and ``sweep_summary.md``: one row per job (per seed when a job trains
  several seeds at once) with the swept values, status, final and best test accuracy, the epochs of
  100 % train accuracy and of 50 % / 95 % test accuracy, and the final SC fraction;
- ``sweep_summary.png``: final test accuracy over the two main swept axes (mean over seeds and
  over any further axes), with the runs that did not complete marked.

A job without ``summary.json`` (killed, timed out or still running) is listed as ``incomplete``
with the milestones of the rows its ``metrics.csv`` holds; one without metrics as ``failed``.
Diverged and interrupted runs keep their status. Nothing is dropped.
"""

from __future__ import annotations

import argparse
import json
import math
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


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories of a sweep, in job-number order."""
    jobs = [p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else p.name))


def job_overrides(job_dir: Path) -> dict[str, str]:
    """The job's command-line overrides as ``{key: value}`` (values as typed)."""
    overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
    pairs = (o.split("=", 1) for o in overrides if "=" in o)
    return {k.lstrip("+~"): v for k, v in pairs if not k.lstrip("+~").startswith(IGNORED_KEYS)}


def swept_keys(overrides: list[dict[str, str]]) -> list[str]:
    """Override keys whose value differs between jobs, in command-line order (all keys for one job)."""
    keys = list(dict.fromkeys(k for o in overrides for k in o))
    if len(overrides) <= 1:
        return keys
    return [k for k in keys if len({o.get(k) for o in overrides}) > 1]


def job_rows(job_dir: Path) -> list[dict[str, Any]]:
    """One row per seed: status and milestones from summary.json, else from metrics.csv."""
    from grokking.train import seed_summary

    summary_path, metrics_path = job_dir / SUMMARY, job_dir / METRICS
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        status, epoch, wall = summary["status"], summary["epoch"], summary.get("wall_time_s")
        per_seed = summary["per_seed"]
    elif metrics_path.is_file() and metrics_path.stat().st_size > 0:
        df = pd.read_csv(metrics_path)
        status, epoch, wall = "incomplete", int(df["epoch"].max()) + 1, None
        per_seed = {str(s): seed_summary(g.to_dict("records")) for s, g in df.groupby("seed")}
    else:
        return [{"seed": None, "status": "failed"}]
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
    overrides = [job_overrides(j) for j in jobs]
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
    except FileNotFoundError as err:
        raise SystemExit(f"error: {err}") from None
    print(to_markdown(table), end="")
    print(f"wrote {args.sweep_dir}/sweep_summary.csv, .md and .png")


if __name__ == "__main__":
    main()
