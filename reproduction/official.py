"""The authors' code as a reference: which of its flags match which of our runs, how to run it in a
scratch copy, and how to convert its long-format log into our ``metrics.csv`` / ``summary.json``.

The snapshot itself is never imported here; ``scripts/official.py`` runs it as a separate process
and the same-computation tests import its modules from the snapshot folder.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from reproduction.manifest import OfficialRun, experiments
from reproduction.results import seed_status

__all__ = ["OFFICIAL_RUNS", "OfficialRun"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT.parent / "shared" / "official" / "fixed-720d244"
OFFICIAL_COMMIT = "720d244"  # the fixed snapshot: its runs are the official column of claims and figures
SEEDS5 = (42, 0, 1, 2, 3)  # 42 is the official default (single-seed runs use it alone)


# experiment -> run name -> the official script's flags that stand for it (each manifest's ``official``)
OFFICIAL_RUNS: dict[str, dict[str, OfficialRun]] = {
    name: dict(exp.official) for name, exp in experiments().items() if exp.official
}

_RELEASE_DTYPE_FLAGS = {"--cross_entropy_dtype": "--softmax_precision", "--train_dtype": "--train_precision"}


def seeds_for(run: OfficialRun, n: int = 0) -> tuple[int, ...]:
    """The first ``n`` seeds of a run (all its seeds when ``n`` is 0). Past the run's own seeds the
    list continues 0, 1, 2, ... (skipping those it has), so a single-seed run (42) grows into the
    five-seed order ``SEEDS5`` and its finished seeds are kept."""
    if not n:
        return run.seeds
    extra = (s for s in range(n + len(run.seeds)) if s not in run.seeds)
    return (*run.seeds, *extra)[:n]


def commit_of(official_dir: Path) -> str:
    """The snapshot's short commit, read from its folder name (``fixed-720d244`` -> ``720d244``)."""
    return Path(official_dir).resolve().name.rsplit("-", 1)[-1]


def is_release(official_dir: Path) -> bool:
    """The released snapshot spells the precision flags differently (``--softmax_precision 64``)."""
    return "--softmax_precision" in (Path(official_dir) / "utils.py").read_text()


def flags_for(run: OfficialRun, seed: int, release: bool) -> list[str]:
    """The full command-line flags of one official run for one seed, in the snapshot's spelling."""
    flags = [*run.flags, "--num_epochs", str(run.epochs), "--log_frequency", str(run.log_frequency)]
    flags += ["--seed", str(seed), "--device", "cpu"]
    if not release:
        return flags
    out: list[str] = []
    it = iter(flags)
    for flag in it:
        if flag in _RELEASE_DTYPE_FLAGS:
            out += [_RELEASE_DTYPE_FLAGS[flag], next(it).removeprefix("float")]
        else:
            out.append(flag)
    return out


def differs_between_commits(run: OfficialRun) -> bool:
    """Runs whose computation the fix merge changed: every ⊥Grad run, StableMax and every
    non-float32 cross-entropy (the release's StableMax ignored the precision flag)."""
    return "--orthogonal_gradients" in run.flags or "--use_transformer" in run.flags


WRAPPER = """\
import os, runpy, sys
sys.path.insert(0, ".")
import torch
torch.set_num_threads({threads})
torch.set_num_threads = lambda *_: None  # the script asks for 5 threads; keep ours

import logger  # the script writes its log only at the end: keep a copy after every logged epoch
_log_metrics = logger.MetricsLogger.log_metrics


def _log_and_keep(self, *args, **kwargs):
    _log_metrics(self, *args, **kwargs)
    self.metrics_df.to_csv("{partial}.tmp", index=False)
    os.replace("{partial}.tmp", "{partial}")


logger.MetricsLogger.log_metrics = _log_and_keep
sys.argv = ["grokking_experiments.py", *{flags!r}]
runpy.run_path("grokking_experiments.py", run_name="__main__")
"""
PARTIAL = "partial_metrics.csv"  # the official log so far, kept by the wrapper
COLUMNS = ("train_loss", "test_loss", "train_acc", "test_acc", "sc_fraction", "zero_loss_fraction")


def parse_until(text: str) -> tuple[str, float]:
    """``COLUMN=VALUE`` of ``scripts/official.py --until``: stop a seed once ``COLUMN >= VALUE`` has
    its onset (``reproduction.results.onset``) in the official log. Raises ValueError with one line."""
    column, sep, value = text.partition("=")
    if not sep or column not in COLUMNS:
        raise ValueError(f"--until {text}: expected COLUMN=VALUE with COLUMN one of {', '.join(COLUMNS)}")
    try:
        return column, float(value)
    except ValueError:
        raise ValueError(f"--until {text}: {value!r} is not a number") from None


def onsets_reached(rows: pd.DataFrame, until: dict[str, float]) -> dict[str, int] | None:
    """The onset epoch of every ``column >= value`` of ``until`` in the logged ``rows`` of a run
    still going (two logged epochs in a row, the rule claims read), or None while one is missing."""
    from reproduction.results import onset

    found = {c: onset(rows.epoch.tolist(), rows[c].tolist(), v, ended=False) for c, v in until.items()}
    return None if None in found.values() else found


def prepare_scratch(official_dir: Path, scratch: Path, flags: list[str], threads: int) -> Path:
    """Copy the snapshot's Python files into ``scratch`` with a wrapper that fixes the thread count
    and a ``torchvision`` stub (imported by its datasets module, unused by these tasks)."""
    scratch.mkdir(parents=True, exist_ok=True)
    for src in Path(official_dir).glob("*.py"):
        shutil.copyfile(src, scratch / src.name)
    stub = scratch / "torchvision"
    stub.mkdir(exist_ok=True)
    (stub / "__init__.py").write_text("from . import datasets  # noqa: F401\n")
    (stub / "datasets.py").write_text("")
    wrapper = scratch / "run_official.py"
    wrapper.write_text(WRAPPER.format(threads=threads, flags=flags, partial=PARTIAL))
    return wrapper


def read_long_metrics(path: Path, log_frequency: int) -> pd.DataFrame:
    """Convert the official long-format log into our columns, one row per logged epoch.

    The official loop logs after the update of epoch index ``e`` (so the model has seen e + 1
    updates); our ``epoch`` counts updates, so the row's epoch is ``position * log_frequency + 1``.
    """
    long = pd.read_csv(path)
    long["epoch"] = long["epoch"].astype(int) * log_frequency + 1
    out = pd.DataFrame(index=sorted(long["epoch"].unique()))
    for (metric, split), column in {
        ("loss", "train"): "train_loss",
        ("loss", "test"): "test_loss",
        ("accuracy", "train"): "train_acc",
        ("accuracy", "test"): "test_acc",
        ("softmax_collapse", "train"): "sc_fraction",
        ("zero_terms", "train"): "zero_loss_fraction",
    }.items():
        rows = long[(long.metric_name == metric) & (long.input_type == split)]
        out[column] = rows.set_index("epoch")["value"].astype(float)
    weights = long[long.metric_name == "weights_l2"]
    for layer, rows in weights.groupby("layer"):
        out[f"weight_norm/{layer}"] = rows.set_index("epoch")["value"].astype(float)
    layer_cols = [c for c in out.columns if c.startswith("weight_norm/")]
    out["weight_norm"] = (out[layer_cols] ** 2).sum(axis=1) ** 0.5
    out.index.name = "epoch"
    return out.reset_index()


def seed_milestones(rows: pd.DataFrame) -> dict[str, Any]:
    """The same per-seed summary our trainer writes (``grokking.train.seed_summary``)."""
    from grokking.train import seed_summary

    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows.to_dict("records")
    ]
    return seed_summary(records)


def write_result(
    run_dirs: dict[int, Path], out_dir: Path, figure: str, name: str, run: OfficialRun, official_dir: Path
) -> dict[str, Any]:
    """Gather the per-seed scratch runs into ``out_dir`` (metrics.csv, summary.json, config.yaml).

    A seed that ended before its last epoch contributes the log the wrapper kept up to its last
    logged epoch. Each seed's entry in ``per_seed`` has its status: ``completed``, ``stopped`` when
    it was stopped on purpose (``--until``: its ``run.json`` says ``stopped``, and the summary says
    why), else ``interrupted``; claims read the last two as the start of a trajectory
    (``reproduction.results.logged``). The run's status is the least finished of its seeds'. Seeds that
    ``out_dir`` already holds and ``run_dirs`` does not name are kept (rows and summary, which
    records each seed's flags and wall time): a batch that runs some seeds of a run again never
    drops the others."""
    frames, per_seed, wall, infos, stopped = [], {}, 0.0, [], {}
    for seed, scratch in run_dirs.items():
        logs = sorted((scratch / "loggs").glob("*/metrics.csv"))
        info_path = scratch / "run.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        status = "completed"
        if not logs or info.get("returncode") != 0:
            logs = [scratch / PARTIAL]
            if not logs[0].is_file():
                raise FileNotFoundError(f"{scratch}: the official run left no log (see its stdout.log)")
            if info.get("stopped"):
                stopped[str(seed)], status = info["stopped"], "stopped"
            else:
                status = "interrupted"
                start = json.loads((scratch / "started.json").read_text())
                info = {**start, "wall_time_s": logs[0].stat().st_mtime - start["started_unix"]}
        rows = read_long_metrics(logs[0], run.log_frequency)
        rows.insert(1, "seed", seed)
        frames.append(rows)
        per_seed[str(seed)] = {
            **seed_milestones(rows),
            "status": status,
            "wall_time_s": info["wall_time_s"],
            "flags": info["flags"],
        }
        wall += info["wall_time_s"]
        infos.append(info)
    kept = kept_seeds(out_dir, set(run_dirs))
    if kept:
        frames.append(kept["rows"])
        per_seed = {**kept["per_seed"], **per_seed}
        stopped = {**kept["stopped"], **stopped}
        wall += kept["wall_time_s"]
    order = sorted(per_seed, key=lambda s: (s != "42", int(s)))  # 42, the official default, first
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = pd.concat(frames)
    pd.concat([rows[rows.seed == int(s)] for s in order]).to_csv(out_dir / "metrics.csv", index=False)
    statuses = {v["status"] for v in per_seed.values()}
    status = next((s for s in ("interrupted", "stopped") if s in statuses), "completed")
    summary = {
        "status": status,
        "code": "official",
        "official_commit": commit_of(official_dir),
        "figure": figure,
        "run": name,
        "epochs": run.epochs,
        "epoch": int(rows.groupby("seed").epoch.max().min()),  # where the least advanced seed got to
        "seeds": [int(s) for s in order],
        "wall_time_s": wall,
        "device": infos[0]["device"],
        "torch": infos[0]["torch"],
        "torch_threads": infos[0]["threads"],
        "note": run.note,
        "per_seed": {s: per_seed[s] for s in order},
    }
    if stopped:
        summary["stopped"] = stopped  # per seed: the --until condition and where its onset was
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# official code {commit_of(official_dir)}: grokking_experiments.py flags per seed"]
    lines += [f"seed_{seed}: {json.dumps(per_seed[seed]['flags'])}" for seed in order]
    (out_dir / "config.yaml").write_text("\n".join(lines) + "\n")
    return summary


def kept_seeds(out_dir: Path, rerun: set[int]) -> dict[str, Any] | None:
    """What an existing result in ``out_dir`` holds of the seeds not in ``rerun``: their rows,
    per-seed summaries (with the run's status where a seed has none of its own), stop conditions
    and wall time; None when it holds none. A seed converted before seeds recorded their own wall
    time gets an equal share of what the run's total leaves over."""
    summary_path, metrics_path = out_dir / "summary.json", out_dir / "metrics.csv"
    if not (summary_path.is_file() and metrics_path.is_file()):
        return None
    old = json.loads(summary_path.read_text())
    seeds = old.get("per_seed", {})
    keep = [s for s in seeds if int(s) not in rerun]
    if not keep:
        return None
    known = {s: v["wall_time_s"] for s, v in seeds.items() if "wall_time_s" in v}
    unknown = len(seeds) - len(known)
    share = (old.get("wall_time_s", 0.0) - sum(known.values())) / unknown if unknown else 0.0
    rows = pd.read_csv(metrics_path)
    return {
        "rows": rows[rows.seed.astype(str).isin(keep)],
        "per_seed": {s: {**seeds[s], "status": seed_status(old, s)} for s in keep},
        "stopped": {s: v for s, v in old.get("stopped", {}).items() if s in keep},
        "wall_time_s": sum(known.get(s, share) for s in keep),
    }
