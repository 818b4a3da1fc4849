"""The report of a ``grid`` study (``protocol: grid`` in a manifest's ``study`` section): every
setting of lr × the methods' parameter ran on the same seeds, and each method's best setting is
scored on those seeds. The baselines study (``reproduction/experiments/study_baselines.yaml``).

:func:`report` writes into its folder ``runs.csv`` (one row per run), ``settings.md`` /
``settings.csv`` (every setting's censored statistics), ``table.md`` / ``table.csv`` (per method ×
architecture: best setting, median epochs to 95 % and 99 % test accuracy with bootstrap 95 %
intervals, share generalized), ``curves.csv`` (test accuracy of the best settings) and the figures
``<name>_heatmap.png`` and ``<name>_best.png``. :func:`extend_commands` gives the censored seeds of
each best setting the larger budget of the manifest's ``extend``.

Each run counts to its own budget, so a run that ``extend`` continued is censored at its larger one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import yaml

from reproduction.censored import censored_summary
from reproduction.manifest import ManifestError
from reproduction.study import THRESHOLDS, Method, Setting, Study, finished, median_interval, overrides, ranked


def row_name(method: Method, value: float) -> str:
    """A heat map's row: ``AdamW wd 1`` for a tuned method, its label for the others."""
    return f"{method.short or method.label} {method.tag} {value:g}" if method.tuned else method.label


def method_of(study: Study, run_name: str) -> str | None:
    """The study's method a run folder belongs to (its name starts with ``<method>_``), longest name first."""
    for m in sorted(study.methods, key=len, reverse=True):
        if run_name.startswith(f"{m}_"):
            return m
    return None


def param_column(study: Study) -> tuple[str, str]:
    """(config key, column) of the parameter the grid crosses with the lr: one key for every method."""
    keys = {m.key for m in study.methods.values()}
    if len(keys) != 1 or None in keys:
        raise ManifestError(f"{study.path.name}: study.methods: a grid report needs one param.key for every method")
    [key] = keys
    return key, key.rsplit(".", 1)[-1]


def collect(study: Study, runs_dir: Path) -> pd.DataFrame:
    """One row per finished run (summary.json) under ``<runs_dir>/<arch>/``: its setting, budget
    (the run's own: an extended run counts to its larger budget), status and milestones."""
    key, column = param_column(study)
    records = []
    for summary_path in sorted(runs_dir.glob("**/summary.json")):
        run_dir = summary_path.parent
        method = method_of(study, run_dir.name)
        if method is None or run_dir.parent.name not in study.archs:
            continue  # not a run of this study
        summary = finished(run_dir)
        if summary is None:  # interrupted: not finished, not a result
            continue
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        value = cfg
        for part in key.split("."):
            value = value[part]
        for seed, s in summary["per_seed"].items():
            final = s.get("final", {})
            records.append(
                {
                    "run": str(run_dir.relative_to(runs_dir)),
                    "arch": run_dir.parent.name,
                    "method": method,
                    "lr": cfg["optimizer"]["lr"],
                    column: value,
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


def setting_stats(group: pd.DataFrame, threshold: int) -> dict:
    """Censored statistics of one setting's runs for one threshold in percent (diverged runs count as censored)."""
    col = f"epoch_test_acc_{threshold}"
    times = [None if pd.isna(v) else int(v) for v in group[col]]
    return censored_summary(times, list(group["budget"]))


def settings(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per (arch, method, lr, ``column``): replicates and censored statistics."""
    rows = []
    for (arch, method, lr, value), group in table.groupby(["arch", "method", "lr", column]):
        row = {"arch": arch, "method": method, "lr": lr, column: value, "replicates": len(group)}
        row["median_best_test_acc"] = group["best_test_acc"].median()
        for key in THRESHOLDS:
            s = setting_stats(group, key)
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
    """Per (arch, method): its best setting (:func:`reproduction.study.ranked`) among those with
    ``min_replicates`` runs or more."""
    eligible = per_setting[per_setting["replicates"] >= min_replicates]
    return ranked(eligible, ("arch", "method")).groupby(["arch", "method"], sort=False).head(1)


def at_grid_edge(row: pd.Series, per_setting: pd.DataFrame) -> bool:
    """Whether a best setting that generalized (any seed to 99 %) has the largest or smallest lr its
    method was run at (with more than one lr run), so that a faster setting may lie outside the grid."""
    if not row.get("share_99", 1) > 0:
        return False
    same = per_setting[(per_setting["arch"] == row["arch"]) & (per_setting["method"] == row["method"])]
    lrs = set(same["lr"])
    return len(lrs) > 1 and row["lr"] in (min(lrs), max(lrs))


def table_markdown(study: Study, best: pd.DataFrame, per_setting: pd.DataFrame) -> str:
    column = param_column(study)[1]
    lines = [
        f"| architecture | method | best lr | {column.replace('_', ' ')} | seeds | median epochs to 95 % [95 % CI] "
        "| median epochs to 99 % [95 % CI] | generalized (99 %) | settings with runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in best.iterrows():
        n_settings = len(per_setting[(per_setting["arch"] == r["arch"]) & (per_setting["method"] == r["method"])])
        lines.append(
            f"| {r['arch']} | {study.methods[r['method']].label} | {r['lr']:g}{' (edge)' if at_grid_edge(r, per_setting) else ''} "
            f"| {r[column]:g} | {r['replicates']} "
            f"| {median_interval(r, 95)} | {median_interval(r, 99)} "
            f"| {r['share_99']:.0%} | {n_settings} |"
        )
    lines.append("\n(edge): the best lr generalized and is the largest or smallest lr this method was run at.")
    return "\n".join(lines) + "\n"


def settings_markdown(study: Study, per_setting: pd.DataFrame) -> str:
    """Every setting run so far, best first within an architecture (:func:`reproduction.study.ranked`,
    the ranking that picks each method's best: where no seed generalized, the furthest median best
    test accuracy first)."""
    column = param_column(study)[1]
    lines = [
        f"| architecture | method | lr | {column.replace('_', ' ')} | seeds finished | median epochs to 95 % [95 % CI] "
        "| median epochs to 99 % [95 % CI] | generalized (99 %) | median best test acc. |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in ranked(per_setting, ("arch",)).iterrows():
        lines.append(
            f"| {r['arch']} | {study.methods[r['method']].label} | {r['lr']:g} | {r[column]:g} | {r['replicates']} "
            f"| {median_interval(r, 95)} | {median_interval(r, 99)} "
            f"| {r['share_99']:.0%} | {r['median_best_test_acc']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def curves(
    best: pd.DataFrame, table: pd.DataFrame, runs_dir: Path, column: str, previous: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Test accuracy over epochs of every run of each best setting, from the runs' metrics.csv. Git
    keeps no metrics.csv of the study, so a run without one keeps its rows of ``previous`` (the
    committed curves.csv), if it has any there."""
    keys = ["arch", "method", "lr", column, "seed"]
    frames = []
    for _, b in best.iterrows():
        sel = table[
            (table["arch"] == b["arch"])
            & (table["method"] == b["method"])
            & (table["lr"] == b["lr"])
            & (table[column] == b[column])
        ]
        for _, r in sel.iterrows():
            path = runs_dir / r["run"] / "metrics.csv"
            if not path.is_file():
                if previous is not None and not previous.empty:
                    key = (b["arch"], b["method"], b["lr"], b[column], r["seed"])
                    kept = previous[(previous[keys] == pd.Series(key, index=keys)).all(axis=1)]
                    frames.append(kept)
                continue
            m = pd.read_csv(path, usecols=["epoch", "seed", "test_acc"])
            m = m[m["seed"] == r["seed"]]
            frames.append(m.assign(arch=b["arch"], method=b["method"], lr=b["lr"], **{column: b[column]}))
    columns = [*keys, "epoch", "test_acc"]
    return pd.concat(frames)[columns] if frames else pd.DataFrame(columns=columns)


def plot_heatmaps(study: Study, per_setting: pd.DataFrame, path: Path) -> None:
    """Median epochs to 99 % over lr × the tuned parameter (a row per value of a tuned method, one row
    for each other method), per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    column = param_column(study)[1]
    archs = [a for a in study.archs if a in set(per_setting["arch"])]
    fig, axes = plt.subplots(1, len(archs), figsize=(6.5 * len(archs), 4.8), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        sub = per_setting[per_setting["arch"] == arch]
        lrs = sorted(set(sub["lr"]))
        tuned = [m for m, method in study.methods.items() if method.tuned]
        row_keys = [(m, v) for m in tuned for v in sorted(set(sub[sub["method"] == m][column]))]
        row_keys += [
            (m, v) for m in study.methods if m not in tuned for v in sorted(set(sub[sub["method"] == m][column]))
        ]
        grid = np.full((len(row_keys), len(lrs)), np.nan)
        for j, (method, wd) in enumerate(row_keys):
            for i, lr in enumerate(lrs):
                cell = sub[(sub["method"] == method) & (sub[column] == wd) & (sub["lr"] == lr)]
                if cell.empty:
                    continue
                c = cell.iloc[0]
                value = c["median_99"]
                grid[j, i] = np.log10(value) if value is not None and not pd.isna(value) else np.nan
                text = f"{c['median_99_text']}\n{c['share_99']:.0%} of {c['replicates']}"
                ax.text(i, j, text, ha="center", va="center", fontsize=7)
        image = ax.imshow(grid, cmap="viridis_r", aspect="auto", alpha=0.8)
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
        names = [row_name(study.methods[m], wd) for m, wd in row_keys]
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


def plot_best(study: Study, curve_table: pd.DataFrame, best: pd.DataFrame, path: Path) -> None:
    """Test accuracy of each method's best setting: median over seeds with a min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = param_column(study)[1]
    archs = [a for a in study.archs if a in set(best["arch"])]
    fig, axes = plt.subplots(1, max(len(archs), 1), figsize=(5.5 * max(len(archs), 1), 4), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for method, spec in study.methods.items():
            c = curve_table[(curve_table["arch"] == arch) & (curve_table["method"] == method)]
            if c.empty:
                continue
            wide = c.pivot_table(index="epoch", columns="seed", values="test_acc").ffill()  # stopped runs hold
            b = best[(best["arch"] == arch) & (best["method"] == method)].iloc[0]
            label = f"{spec.label} (lr {b['lr']:g}" + (f", {spec.tag} {b[column]:g})" if spec.tuned else ")")
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


def report(study: Study, runs_dir: Path, out: Path, figures: Path, min_replicates: int | None = None) -> str:
    """Write the report of the runs in ``runs_dir`` into ``out`` and ``figures``; return ``table.md``."""
    column = param_column(study)[1]
    table = collect(study, runs_dir)
    if table.empty:
        raise ManifestError(f"{runs_dir} holds no finished runs (summary.json)")
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    table.sort_values(["arch", "method", "lr", column, "seed"]).to_csv(out / "runs.csv", index=False)
    per_setting = settings(table, column)
    per_setting.to_csv(out / "settings.csv", index=False)
    (out / "settings.md").write_text(settings_markdown(study, per_setting))
    best = best_settings(per_setting, min_replicates or study.min_replicates or len(study.tuning_seeds))
    best.to_csv(out / "table.csv", index=False)
    markdown = table_markdown(study, best, per_setting)
    (out / "table.md").write_text(markdown)
    previous = pd.read_csv(out / "curves.csv") if (out / "curves.csv").is_file() else None
    curve_table = curves(best, table, runs_dir, column, previous)
    curve_table.to_csv(out / "curves.csv", index=False)
    plot_heatmaps(study, per_setting, figures / f"{study.name}_heatmap.png")
    plot_best(study, curve_table, best, figures / f"{study.name}_best.png")
    return markdown


def extend_commands(
    study: Study, runs_dir: Path, archs: list[str], epochs: int | None = None, min_replicates: int | None = None
) -> list[list[str]]:
    """The ``python train.py -m`` commands that give the censored seeds of each best setting the
    budget of the manifest's ``extend`` (or ``epochs``) with ``extend=true``: a run that trained its
    whole budget continues, one that stopped on its ``stop_when`` is skipped. Only settings where
    some seeds generalized and others did not: a method that generalized on no seed has no best
    setting to refine."""
    column = param_column(study)[1]
    table = collect(study, runs_dir)
    if table.empty:
        raise ManifestError(f"{runs_dir} holds no finished runs (summary.json); run the grid first")
    best = best_settings(settings(table, column), min_replicates or study.min_replicates or len(study.tuning_seeds))
    targets = best[(best["share_99"] > 0) & (best["share_99"] < 1) & best["arch"].isin(archs)]
    commands = []
    for _, t in targets.iterrows():
        budget = epochs or study.extend.get(t["arch"])
        if budget is None:
            raise ManifestError(f"{study.path.name}: study.extend.{t['arch']}: missing (or pass the budget)")
        method = study.methods[t["method"]]
        setting = Setting(float(t["lr"]), float(t[column]))
        cmd = [sys.executable, "train.py", "-m"]
        cmd += overrides(study, t["arch"], method, setting, list(study.tuning_seeds), runs_dir)
        commands.append(cmd + [f"epochs={budget}", "extend=true"])
    return commands
