"""Is ⊥AdamW or StableMax faster than a tuned weight decay? Run the study and write its report.

    python scripts/study_baselines.py run      # the grid, as Hydra multiruns of train.py (skips completed runs)
    python scripts/study_baselines.py extend   # more epochs for the censored seeds of the best settings
    python scripts/study_baselines.py report   # table, tidy CSV, heat maps and curves from the runs

``run`` trains, per architecture (``conf/experiment/study_baselines_<arch>.yaml``), AdamW over
weight decay × lr, and ⊥AdamW and StableMax-CE AdamW (no decay) over the same lrs, each with
``--replicates`` seeds (the seed sets both the split and the init). Each run stops once test
accuracy holds 99 % (the experiment's ``stop_when``) or at the budget. Jobs go in priority order:
the middle of the lr range first, plain AdamW without decay last, then the lrs beyond the grid's end
where a method's best setting lay (``EDGE``: AdamW past the largest, ⊥AdamW on the transformer
past the smallest). A rerun skips completed runs and
resumes interrupted ones from their checkpoint. Run directories:
``<out>/<arch>/<method>_lr<lr>_wd<decay>_s<seed>/``.

``report`` writes into ``--out`` (default results/study_baselines/) ``runs.csv`` (one row per run),
``settings.md`` / ``settings.csv`` (every setting's censored statistics), ``table.md`` / ``table.csv`` (per method × architecture: best setting, median epochs to 95 % and
99 % test accuracy with bootstrap 95 % intervals, share generalized), ``curves.csv`` (test accuracy
of the best settings), and into ``--figures`` ``study_baselines_heatmap.png`` and
``study_baselines_best.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reproduction.censored import censored_summary  # noqa: E402

ARCHS = ("mlp2", "mlp1", "transformer")
METHODS = ("perpgrad", "adamw", "stablemax")  # in the order the jobs run
LABELS = {"adamw": "AdamW + weight decay", "perpgrad": "⊥AdamW", "stablemax": "StableMax-CE AdamW"}
# lr and weight-decay grids, each in the order the jobs run (where methods generalize first)
LRS = {
    "mlp2": (0.01, 0.005, 0.02, 0.002, 0.05, 0.001),
    "mlp1": (0.01, 0.005, 0.02, 0.002, 0.05, 0.001),
    "transformer": (0.002, 0.005, 0.001),  # reduced grid
}
DECAYS = {"mlp2": (1, 3, 10, 0.3, 0.1, 0), "mlp1": (1, 3, 10, 0.3, 0.1, 0), "transformer": (1, 0.1, 0)}
# Beyond the grid: where a method's best setting sat at the end of a grid's lrs, it also runs past
# that end, up to one lr past its fastest setting, with the decays that generalized there. AdamW
# (MLP, 1 layer: 0.1 was faster than 5e-2, 0.2 slower; 2 layers: 0.1 slower; transformer: 1e-2
# faster than 5e-3, 2e-2 slower) and ⊥AdamW on the transformer (best at the grid's smallest lr,
# 1e-3; 5e-4 was faster still).
# Only decays with lr × decay < 1: at 1 the decoupled decay zeroes the weights every step.
EDGE = {
    ("mlp2", "adamw"): ((0.1,), (1, 3, 0.3)),
    ("mlp1", "adamw"): ((0.1, 0.2), (1, 3, 0.3)),
    ("transformer", "adamw"): ((0.01, 0.02), (1,)),
    ("transformer", "perpgrad"): ((0.0005, 0.0002), (0,)),
}
METHOD_OVERRIDES = {
    "adamw": ["optimizer=adamw"],
    "perpgrad": ["optimizer=perp_adamw"],
    "stablemax": ["optimizer=adamw", "loss=stablemax"],
}
THRESHOLDS = (0.95, 0.99)
# ``extend``: the budget that the censored seeds of a best setting get (extend=true continues them)
EXTENDED_BUDGET = {"mlp2": 10_000, "mlp1": 20_000, "transformer": 10_000}


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def jobs(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(architecture, overrides) of each multirun, in priority order: every lr of the methods
    without decay and of AdamW with decay first, AdamW without decay after them."""
    seeds = ",".join(str(s) for s in range(args.replicates))
    out = []
    for arch in args.archs.split(","):
        lrs = floats(args.lrs) if args.lrs else LRS[arch]
        decays = floats(args.decays) if args.decays else DECAYS[arch]
        late = []
        for lr in lrs:
            for method in args.methods.split(","):
                wds = [d for d in decays if d > 0] if method == "adamw" else [0]
                if method == "adamw" and 0 in decays:
                    late.append((arch, method, lr, [0]))
                if wds:
                    out.append((arch, method, lr, wds))
        out += late
        if not args.lrs and not args.decays:
            for method in args.methods.split(","):
                lrs_beyond, decays_beyond = EDGE.get((arch, method), ((), ()))
                for lr in lrs_beyond:
                    out.append((arch, method, lr, [d for d in decays_beyond if lr * d < 1]))
    commands = []
    for arch, method, lr, wds in out:
        overrides = [
            f"experiment=study_baselines_{arch}",
            *METHOD_OVERRIDES[method],
            f"optimizer.lr={lr:g}",
            f"optimizer.weight_decay={','.join(f'{w:g}' for w in wds)}",
            f"seed={seeds}",
            f"hydra.sweep.dir={Path(args.out).resolve() / arch}",
            f"hydra.sweep.subdir={method}_lr{lr:g}_wd${{optimizer.weight_decay}}_s${{seed}}",
            *args.set,
        ]
        commands.append((arch, overrides))
    return commands


def run(args: argparse.Namespace) -> int:
    failures = 0
    for _arch, overrides in jobs(args):
        print(" ".join(["train.py -m", *overrides]), flush=True)
        if args.dry_run:
            continue
        res = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", *overrides], cwd=ROOT)
        if res.returncode == 130:
            return 130
        failures += res.returncode != 0
    return 1 if failures else 0


def extend(args: argparse.Namespace) -> int:
    """Give the censored seeds of each best setting the larger budget of ``EXTENDED_BUDGET`` (or
    ``--epochs``): the same multirun as ``run`` with ``epochs=N extend=true``, which continues runs
    that trained their whole budget and skips those that stopped on the 99 % rule. Only settings
    where some seeds generalized and others did not: a method that generalized on no seed (StableMax
    in float32 here) has no best setting to refine."""
    table = collect(Path(args.out))
    if table.empty:
        print(f"error: {args.out} holds no finished runs (summary.json); run the grid first", file=sys.stderr)
        return 2
    best = best_settings(settings(table), args.min_replicates)
    targets = best[(best["share_99"] > 0) & (best["share_99"] < 1)]
    if args.archs:
        targets = targets[targets["arch"].isin(args.archs.split(","))]
    if targets.empty:
        print("every best setting that generalized did so on all its seeds: nothing to extend")
        return 0
    failures = 0
    for _, t in targets.iterrows():
        epochs = args.epochs or EXTENDED_BUDGET[t["arch"]]
        spec = argparse.Namespace(
            archs=t["arch"],
            methods=t["method"],
            lrs=f"{t['lr']:g}",
            decays=f"{t['weight_decay']:g}",
            replicates=args.replicates,
            out=args.out,
            set=[f"epochs={epochs}", "extend=true", *args.set],
            dry_run=args.dry_run,
        )
        failures += run(spec) != 0
    return 1 if failures else 0


def method_of(cfg: dict) -> str:
    if cfg["optimizer"]["orthogonal"]:
        return "perpgrad"
    return "stablemax" if cfg["loss"]["name"] == "stablemax" else "adamw"


def arch_of(cfg: dict) -> str:
    return "transformer" if cfg["model"]["name"] == "transformer" else f"mlp{cfg['model']['depth']}"


def collect(runs_dir: Path) -> pd.DataFrame:
    """One row per finished run (summary.json): its setting, budget, status and milestones."""
    records = []
    for summary_path in sorted(runs_dir.glob("**/summary.json")):
        run_dir = summary_path.parent
        summary = json.loads(summary_path.read_text())
        if summary["status"] not in ("completed", "diverged"):  # interrupted: not finished, not a result
            continue
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        for seed, s in summary["per_seed"].items():
            final = s.get("final", {})
            records.append(
                {
                    "run": str(run_dir.relative_to(runs_dir)),
                    "arch": arch_of(cfg),
                    "method": method_of(cfg),
                    "lr": cfg["optimizer"]["lr"],
                    "weight_decay": cfg["optimizer"]["weight_decay"],
                    "seed": int(seed),
                    "dataset_seed": cfg["dataset"]["seed"],
                    "status": summary["status"],
                    "stopped_early": summary.get("stopped_early") is not None,
                    "epoch": summary["epoch"],
                    "budget": summary["epochs"],
                    "epoch_test_acc_95": s.get("epoch_test_acc_95"),
                    "epoch_test_acc_99": s.get("epoch_test_acc_99"),
                    "final_test_acc": final.get("test_acc"),
                    "best_test_acc": s.get("best_test_acc"),
                    "wall_time_s": summary.get("wall_time_s"),
                }
            )
    table = pd.DataFrame.from_records(records)
    for col in ("epoch_test_acc_95", "epoch_test_acc_99"):
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


def setting_stats(group: pd.DataFrame, threshold: float) -> dict:
    """Censored statistics of one setting's runs for one threshold (diverged runs count as censored)."""
    col = f"epoch_test_acc_{round(threshold * 100)}"
    times = [None if pd.isna(v) else int(v) for v in group[col]]
    return censored_summary(times, list(group["budget"]))


def settings(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (arch, method, lr, weight decay): replicates and censored statistics."""
    rows = []
    for (arch, method, lr, wd), group in table.groupby(["arch", "method", "lr", "weight_decay"]):
        row = {"arch": arch, "method": method, "lr": lr, "weight_decay": wd, "replicates": len(group)}
        row["median_best_test_acc"] = group["best_test_acc"].median()
        for t in THRESHOLDS:
            s = setting_stats(group, t)
            key = round(t * 100)
            row |= {
                f"median_{key}": s["median"],
                f"median_{key}_text": s["median_text"],
                f"ci_{key}_low": s["ci_low"],
                f"ci_{key}_high": s["ci_high"],
                f"share_{key}": s["share"],
            }
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def best_settings(per_setting: pd.DataFrame, min_replicates: int) -> pd.DataFrame:
    """Per (arch, method): the setting with the most generalized seeds, then the lowest median to 99 %,
    then (where no seed generalized, e.g. StableMax in float32) the highest median best test accuracy."""
    eligible = per_setting[per_setting["replicates"] >= min_replicates]
    ranked = eligible.assign(
        _median=eligible["median_99"].fillna(math.inf),
        _share=-eligible["share_99"],
        _reach=-eligible["median_best_test_acc"].fillna(0.0),
    ).sort_values(["arch", "method", "_share", "_median", "_reach", "lr"])
    return ranked.groupby(["arch", "method"], sort=False).head(1).drop(columns=["_median", "_share", "_reach"])


def interval(row: pd.Series, key: int) -> str:
    low, high = row[f"ci_{key}_low"], row[f"ci_{key}_high"]
    fmt = lambda v: "∞" if v is None or pd.isna(v) or math.isinf(v) else f"{v:.0f}"  # noqa: E731
    return f"[{fmt(low)}, {fmt(high)}]"


def at_grid_edge(row: pd.Series, per_setting: pd.DataFrame) -> bool:
    """Whether a best setting that generalized (any seed to 99 %) has the largest or smallest lr its
    method was run at (with more than one lr run), so that a faster setting may lie outside the grid."""
    if not row.get("share_99", 1) > 0:
        return False
    same = per_setting[(per_setting["arch"] == row["arch"]) & (per_setting["method"] == row["method"])]
    lrs = set(same["lr"])
    return len(lrs) > 1 and row["lr"] in (min(lrs), max(lrs))


def table_markdown(best: pd.DataFrame, per_setting: pd.DataFrame) -> str:
    lines = [
        "| architecture | method | best lr | weight decay | seeds | median epochs to 95 % [95 % CI] "
        "| median epochs to 99 % [95 % CI] | generalized (99 %) | settings with runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in best.iterrows():
        n_settings = len(per_setting[(per_setting["arch"] == r["arch"]) & (per_setting["method"] == r["method"])])
        lines.append(
            f"| {r['arch']} | {LABELS[r['method']]} | {r['lr']:g}{' (edge)' if at_grid_edge(r, per_setting) else ''} "
            f"| {r['weight_decay']:g} | {r['replicates']} "
            f"| {r['median_95_text']} {interval(r, 95)} | {r['median_99_text']} {interval(r, 99)} "
            f"| {r['share_99']:.0%} | {n_settings} |"
        )
    lines.append("\n(edge): the best lr generalized and is the largest or smallest lr this method was run at.")
    return "\n".join(lines) + "\n"


def settings_markdown(per_setting: pd.DataFrame) -> str:
    """Every setting run so far, fastest first within an architecture."""
    lines = [
        "| architecture | method | lr | weight decay | seeds finished | median epochs to 95 % [95 % CI] "
        "| median epochs to 99 % [95 % CI] | generalized (99 %) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ranked = per_setting.assign(_m=per_setting["median_99"].fillna(math.inf), _s=-per_setting["share_99"])
    for _, r in ranked.sort_values(["arch", "_s", "_m", "method", "lr"]).iterrows():
        lines.append(
            f"| {r['arch']} | {LABELS[r['method']]} | {r['lr']:g} | {r['weight_decay']:g} | {r['replicates']} "
            f"| {r['median_95_text']} {interval(r, 95)} | {r['median_99_text']} {interval(r, 99)} "
            f"| {r['share_99']:.0%} |"
        )
    return "\n".join(lines) + "\n"


CURVE_KEYS = ["arch", "method", "lr", "weight_decay", "seed"]


def curves(
    best: pd.DataFrame, table: pd.DataFrame, runs_dir: Path, previous: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Test accuracy over epochs of every run of each best setting, from the runs' metrics.csv. Git
    keeps no metrics.csv of the study, so a run without one keeps its rows of ``previous`` (the
    committed curves.csv), if it has any there."""
    frames = []
    for _, b in best.iterrows():
        sel = table[
            (table["arch"] == b["arch"])
            & (table["method"] == b["method"])
            & (table["lr"] == b["lr"])
            & (table["weight_decay"] == b["weight_decay"])
        ]
        for _, r in sel.iterrows():
            path = runs_dir / r["run"] / "metrics.csv"
            if not path.is_file():
                if previous is not None and not previous.empty:
                    key = (b["arch"], b["method"], b["lr"], b["weight_decay"], r["seed"])
                    kept = previous[(previous[CURVE_KEYS] == pd.Series(key, index=CURVE_KEYS)).all(axis=1)]
                    frames.append(kept)
                continue
            m = pd.read_csv(path, usecols=["epoch", "seed", "test_acc"])
            m = m[m["seed"] == r["seed"]]
            frames.append(m.assign(arch=b["arch"], method=b["method"], lr=b["lr"], weight_decay=b["weight_decay"]))
    if not frames:
        return pd.DataFrame(columns=["arch", "method", "lr", "weight_decay", "seed", "epoch", "test_acc"])
    return pd.concat(frames)[["arch", "method", "lr", "weight_decay", "seed", "epoch", "test_acc"]]


def plot_heatmaps(per_setting: pd.DataFrame, path: Path) -> None:
    """Median epochs to 99 % over lr × weight decay (⊥AdamW and StableMax as extra rows), per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    archs = [a for a in ARCHS if a in set(per_setting["arch"])]
    fig, axes = plt.subplots(1, len(archs), figsize=(6.5 * len(archs), 4.8), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        sub = per_setting[per_setting["arch"] == arch]
        lrs = sorted(set(sub["lr"]))
        row_keys = [("adamw", wd) for wd in sorted(set(sub[sub["method"] == "adamw"]["weight_decay"]))]
        row_keys += [(m, 0.0) for m in ("perpgrad", "stablemax") if m in set(sub["method"])]
        grid = np.full((len(row_keys), len(lrs)), np.nan)
        for j, (method, wd) in enumerate(row_keys):
            for i, lr in enumerate(lrs):
                cell = sub[(sub["method"] == method) & (sub["weight_decay"] == wd) & (sub["lr"] == lr)]
                if cell.empty:
                    continue
                c = cell.iloc[0]
                value = c["median_99"]
                grid[j, i] = np.log10(value) if value is not None and not pd.isna(value) else np.nan
                text = f"{c['median_99_text']}\n{c['share_99']:.0%} of {c['replicates']}"
                ax.text(i, j, text, ha="center", va="center", fontsize=7)
        image = ax.imshow(grid, cmap="viridis_r", aspect="auto", alpha=0.8)
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
        names = [f"AdamW wd {wd:g}" if m == "adamw" else LABELS[m] for m, wd in row_keys]
        ax.set_yticks(range(len(row_keys)), names)
        ax.set_xlabel("learning rate")
        ax.set_title(
            f"{arch}: median epochs to 99 % test\n(share of seeds generalized; uncoloured: median above the budget, or not run)",
            fontsize=10,
        )
        fig.colorbar(image, ax=ax, label="log10 median epochs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_best(curve_table: pd.DataFrame, best: pd.DataFrame, path: Path) -> None:
    """Test accuracy of each method's best setting: median over seeds with a min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = [a for a in ARCHS if a in set(best["arch"])]
    fig, axes = plt.subplots(1, max(len(archs), 1), figsize=(5.5 * max(len(archs), 1), 4), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for method in METHODS:
            c = curve_table[(curve_table["arch"] == arch) & (curve_table["method"] == method)]
            if c.empty:
                continue
            wide = c.pivot_table(index="epoch", columns="seed", values="test_acc").ffill()  # stopped runs hold
            b = best[(best["arch"] == arch) & (best["method"] == method)].iloc[0]
            label = f"{LABELS[method]} (lr {b['lr']:g}" + (f", wd {b['weight_decay']:g})" if method == "adamw" else ")")
            line = ax.plot(wide.index, wide.median(axis=1), label=label)[0]
            ax.fill_between(wide.index, wide.min(axis=1), wide.max(axis=1), color=line.get_color(), alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{arch}: best setting per method\n(median and min–max over seeds)", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(args: argparse.Namespace) -> int:
    runs_dir, out, figures = Path(args.runs or Path(args.out) / "runs"), Path(args.out), Path(args.figures)
    table = collect(runs_dir)
    if table.empty:
        print(f"error: {runs_dir} holds no finished runs (summary.json)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    table.sort_values(["arch", "method", "lr", "weight_decay", "seed"]).to_csv(out / "runs.csv", index=False)
    per_setting = settings(table)
    per_setting.to_csv(out / "settings.csv", index=False)
    (out / "settings.md").write_text(settings_markdown(per_setting))
    best = best_settings(per_setting, args.min_replicates)
    best.to_csv(out / "table.csv", index=False)
    markdown = table_markdown(best, per_setting)
    (out / "table.md").write_text(markdown)
    previous = pd.read_csv(out / "curves.csv") if (out / "curves.csv").is_file() else None
    curve_table = curves(best, table, runs_dir, previous)
    curve_table.to_csv(out / "curves.csv", index=False)
    plot_heatmaps(per_setting, figures / "study_baselines_heatmap.png")
    plot_best(curve_table, best, figures / "study_baselines_best.png")
    print(markdown, end="")
    print(
        f"{len(table)} runs; wrote {out}/runs.csv, settings.csv/.md, table.md, curves.csv and {figures}/study_baselines_*.png"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    training = argparse.ArgumentParser(add_help=False)  # the options `run` and `extend` share
    training.add_argument("--replicates", type=int, default=5, help="seeds 0..N-1 (split and init)")
    training.add_argument("--out", default="results/study_baselines/runs", help="run directories go to <out>/<arch>/")
    training.add_argument(
        "--set", action="append", default=[], help="extra override for every run, e.g. --set epochs=50"
    )
    training.add_argument("--dry-run", action="store_true", help="print the multiruns without running them")
    ranking = argparse.ArgumentParser(add_help=False)  # the option `extend` and `report` share
    ranking.add_argument(
        "--min-replicates", type=int, default=5, help="settings with fewer finished seeds are not ranked"
    )
    r = sub.add_parser(
        "run", parents=[training], help="train the grid (skips completed runs, resumes interrupted ones)"
    )
    r.add_argument("--archs", default=",".join(ARCHS), help="comma-separated: mlp2, mlp1, transformer")
    r.add_argument("--methods", default=",".join(METHODS), help="comma-separated: perpgrad, stablemax, adamw")
    r.add_argument("--lrs", help="comma-separated learning rates (default: the architecture's grid)")
    r.add_argument("--decays", help="comma-separated AdamW weight decays (default: the architecture's grid)")
    e = sub.add_parser(
        "extend", parents=[training, ranking], help="more epochs for the censored seeds of best settings (extend=true)"
    )
    e.add_argument("--archs", help="comma-separated (default: all)")
    e.add_argument("--epochs", type=int, help="the new budget (default: EXTENDED_BUDGET of the architecture)")
    p = sub.add_parser("report", parents=[ranking], help="write the table, CSVs and figures from the runs")
    p.add_argument("--runs", help="run directories (default: <out>/runs)")
    p.add_argument("--out", default="results/study_baselines")
    p.add_argument("--figures", default="results/figures")
    args = parser.parse_args(argv)
    return {"run": run, "extend": extend, "report": report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
