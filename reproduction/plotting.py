"""Shared figure style and output for the plotting scripts in ``scripts/plot_*.py``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reproduction.palette import COLORS  # noqa: E402,F401  (the figures import it from here)
from reproduction.results import exists  # noqa: E402

FIGURES = Path(__file__).resolve().parent.parent / "results" / "figures"

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def panels(n: int, width: float = 3.6, height: float = 2.9, **kw):
    """A row of ``n`` panels in the house style."""
    plt.rcParams.update(STYLE)
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, **kw)
    return fig, axes[0]


def save(fig, name: str, out_dir: Path = FIGURES) -> list[Path]:
    """Write ``<name>.png`` and ``<name>.pdf`` into ``out_dir`` and close the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    mark_damaged(fig)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    plt.close(fig)
    return paths


def mark_damaged(fig) -> None:
    """Name, at the foot of ``fig``, the damaged runs its readers met and left out (like "not run"
    elsewhere): a run whose files do not parse (:func:`reproduction.results.damage`)."""
    from reproduction.results import MET_DAMAGED, run_label

    if MET_DAMAGED:
        named = "; ".join(f"{run_label(path)} ({why})" for path, why in sorted(MET_DAMAGED.items()))
        fig.text(0.5, 0.0, f"damaged, left out: {named}", ha="center", va="bottom", fontsize=6, color="firebrick",
                 wrap=True)  # fmt: skip
        MET_DAMAGED.clear()


def curve_stats(df, x: str, y: str):
    """The mean, min and max of ``y`` over the curves in ``df`` (one per replicate and seed) at each
    ``x`` that any of them logged. Runs log extra epochs around their own onsets, so a curve is
    interpolated linearly at the others' epochs (within its own span, never beyond its ends):
    otherwise each extra epoch would average only the curves that logged it, and the mean would
    jump between them."""
    keys = [c for c in ("replicate", "seed") if c in df]
    if not keys or df.groupby(keys).ngroups == 1:
        grouped = df.groupby(x)[y]
        return grouped.mean(), grouped.min(), grouped.max()
    wide = df.pivot_table(index=x, columns=keys, values=y, aggfunc="mean", dropna=False).sort_index()
    wide = wide.interpolate(method="index", limit_area="inside")
    return wide.mean(axis=1), wide.min(axis=1), wide.max(axis=1)


def mean_band(ax, df, x: str, y: str, label: str | None, color: str | None = None, **kw) -> None:
    """Mean over seeds and replicates as a line, their min-max as a band (one curve is just a line;
    :func:`curve_stats`). The band is drawn on log-x panels too (it follows the logged epochs)."""
    mean, lo, hi = curve_stats(df, x, y)
    (line,) = ax.plot(mean.index, mean.values, label=label, color=color, **kw)
    if (lo != hi).any():
        ax.fill_between(mean.index, lo.values, hi.values, color=line.get_color(), alpha=0.2, lw=0)


def curves_label(label: str, df) -> str:
    """``label`` with the number of independent replicates pooled in ``df`` (when more than one)."""
    n = df["replicate"].nunique() if "replicate" in df else 1
    return label if n == 1 else f"{label} (n={n})"


def accuracy_curves(ax, df, label: str | None, color: str | None, lw: float = 1.5) -> None:
    """Test accuracy (solid, labelled) and train accuracy (dashed, thinner) in percent, mean ± band over seeds."""
    pct = df.assign(test_acc=100 * df.test_acc, train_acc=100 * df.train_acc)
    mean_band(ax, pct, "epoch", "test_acc", label, color, lw=lw)
    mean_band(ax, pct, "epoch", "train_acc", None, color, ls="--", lw=lw * 2 / 3)


def run_panels(figure: str, specs: list[tuple], results: Path):
    """One panel per ``(run, title, *extra)`` of ``specs``, titled; a run missing from ``results``
    gets a "not run" note instead of curves. Returns the figure and, for each run that exists,
    ``(ax, run, extra, metrics)``."""
    from reproduction.results import exists, metrics

    fig, axes = panels(len(specs))
    present = []
    for ax, (run, title, *extra) in zip(axes, specs):
        ax.set_title(title)
        if not exists(figure, run, results):
            ax.text(0.5, 0.5, f"{figure}/{run}: not run", ha="center", transform=ax.transAxes)
            continue
        present.append((ax, run, extra, metrics(figure, run, results)))
    return fig, present


def note_missing(ax, figure: str, runs: list[str]) -> None:
    """Mark on ``ax`` the runs of ``figure`` that have no results yet."""
    ax.text(0.5, 0.5, "not run: " + ", ".join(f"{figure}/{r}" for r in runs), ha="center", wrap=True,
            transform=ax.transAxes, fontsize=7, color="0.4")  # fmt: skip


def present_runs(ax, figure: str, runs, results: Path) -> list[str]:
    """The runs of ``figure`` (in order) that have results in ``results``; the others are noted on ``ax``."""
    present = [run for run in runs if exists(figure, run, results)]
    missing = [run for run in runs if run not in present]
    if missing:
        note_missing(ax, figure, missing)
    return present


def missing_figure(name: str, reason: str, out_dir: Path = FIGURES) -> list[Path]:
    """A placeholder for a figure whose results are missing, saying which."""
    fig, (ax,) = panels(1, width=6.0)
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{name}: results missing\n{reason}", ha="center", va="center", wrap=True, fontsize=8)
    return save(fig, name, out_dir)


def accuracy_and(
    figure: str,
    runs: dict[str, tuple[str, str]],
    results: Path,
    column: str,
    log_epochs: bool = True,
    scale: float = 1.0,
):
    """Two panels, one line per run (``run: (label, color)``): test/train accuracy, and the mean
    band over seeds of ``scale`` × ``column``. With ``log_epochs`` both x axes are logarithmic
    (epoch 0 left out). Returns the figure and the two axes, for the caller's labels."""
    from reproduction.results import exists, metrics

    fig, (acc, other) = panels(2, width=4.2)
    missing = [run for run in runs if not exists(figure, run, results)]
    if missing:
        note_missing(acc, figure, missing)
    for run, (label, color) in runs.items():
        if run in missing:
            continue
        df = metrics(figure, run, results)
        if log_epochs:
            df = df[df.epoch > 0]
        accuracy_curves(acc, df, label, color)
        mean_band(other, df.assign(**{column: scale * df[column]}), "epoch", column, label, color)
    acc.set(xlabel="epoch", ylim=(-2, 102), ylabel="accuracy (%)", title="accuracy (solid test, dashed train)")
    other.set(xlabel="epoch")
    if log_epochs:
        acc.set_xscale("log")
        other.set_xscale("log")
    return fig, acc, other


OFFICIAL_LINE = {"color": "0.45", "lw": 0.7, "alpha": 0.9}  # thin grey: the official code's runs


def official_legend(ax, label: str = "official code (test)") -> None:
    """The legend entry of ``official_overlay``'s lines, in their style."""
    ax.plot([], [], label=label, **OFFICIAL_LINE)


def official_overlay(
    ax, figure: str, run: str, column: str, results: Path, scale: float = 100.0, since: float = 1
) -> bool:
    """Thin grey lines: the official code's run of the same settings (one per ``--seed``), from
    ``<results>/official/<commit>/``, where it exists, from epoch ``since`` on (a log-x panel whose
    own curves start later). Returns whether anything was drawn."""
    from reproduction.official import OFFICIAL_COMMIT
    from reproduction.results import exists, metrics

    root = Path(results) / "official" / OFFICIAL_COMMIT
    if not exists(figure, run, root):
        return False
    df = metrics(figure, run, root)
    for _, rows in df[df.epoch >= max(since, 1)].groupby("seed"):
        ax.plot(rows.epoch, scale * rows[column], zorder=2.5, **OFFICIAL_LINE)  # above the bands
    return True


def color(key: str | None) -> str | None:
    """A manifest series' colour: a key of :data:`COLORS`, else the colour as written (None: the next
    of matplotlib's cycle)."""
    return COLORS.get(key, key) if key else None


def series_of(panel) -> dict[str, tuple[str | None, str | None]]:
    """A manifest panel's series as ``run: (label, colour)``, in order."""
    return {s.run: (s.label, color(s.color)) for s in panel.series}


def draw(exp, results: Path, out_dir: Path = FIGURES) -> list[Path]:
    """An experiment's figure from its manifest's plot panels alone (``reproduction.manifest``): one
    file per ``out`` (the experiment's name by default), one panel per entry, one line per series
    (mean over seeds and replicates, min-max band): test accuracy solid and train dashed for
    ``y: accuracy``, else the metrics column ``y``. Runs without results are named on their panel."""
    from reproduction.results import metrics

    files: dict[str, list] = {}
    for panel in exp.plot.panels:
        files.setdefault(panel.out or exp.name, []).append(panel)
    written = []
    for name, group in files.items():
        fig, axes = panels(len(group), width=4.2)
        for ax, panel in zip(axes, group, strict=True):
            runs = series_of(panel)
            for run in present_runs(ax, exp.name, runs, results):
                label, col = runs[run]
                df = metrics(exp.name, run, results)
                if panel.log_x:
                    df = df[df.epoch > 0]
                label = curves_label(label or run, df)
                if panel.y == "accuracy":
                    accuracy_curves(ax, df, label, col)
                else:
                    mean_band(ax, df, "epoch", panel.y, label, col)
            ylabel = "accuracy (%) (solid test, dashed train)" if panel.y == "accuracy" else panel.y
            ax.set(title=panel.title, xlabel="epoch", ylabel=ylabel)
            if panel.log_x:
                ax.set_xscale("log")
            if panel.log_y:
                ax.set_yscale("log")
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        written += save(fig, name, out_dir)
    return written
