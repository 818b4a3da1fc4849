"""How many finished replicates each run has, against its target: the status table of
``docs/replicates.md``, written from ``results/`` so that it cannot drift from the committed runs.

A replicate counts once its run has finished (``completed`` or ``diverged`` in its summary.json):
replicate 0 is ``results/<figure>/<run>/``, replicate k lies in ``results/replicates/<k>/``. The
target is 5 replicates per run, 3 for the 80k- and 100k-epoch runs (Figs. 1b, 1c and 4). Runs that
only vary another run's init seed (an explicit ``seed=`` or ``seeds=``) are not replicated and are
left out; ``scripts/claims.py`` passes the rest of ``scripts/reproduce.py``'s run table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from reproduction.results import MissingRun, Replicate, completed, replicate_indices, run_dir, summary

START = "<!-- replicates: written by `make figures` from results/; do not edit -->"
END = "<!-- /replicates -->"
TARGET, LONG_TARGET, LONG_EPOCHS = 5, 3, 80_000


def finished(figure: str, run: str, results: Path) -> int:
    """The number of finished replicates of ``figure/run`` under ``results``."""
    return sum(completed(run_dir(figure, run, Replicate(results, k))) for k in replicate_indices(results))


def target(figure: str, run: str, results: Path) -> int:
    """The replicates a run should have: 3 for runs of 80k epochs or more, else 5."""
    try:
        epochs = int(summary(figure, run, results)["epochs"])
    except (MissingRun, KeyError, TypeError, ValueError):
        return TARGET
    return LONG_TARGET if epochs >= LONG_EPOCHS else TARGET


def counts(runs: Mapping[str, Sequence[str]], results: Path) -> list[tuple[str, str, int, int]]:
    """(figure, run, finished replicates, target) of every run, in the order of ``runs``."""
    return [(fig, name, finished(fig, name, results), target(fig, name, results)) for fig in runs for name in runs[fig]]


def block(runs: Mapping[str, Sequence[str]], results: Path) -> str:
    """The status block: a line of totals, then one Markdown row per figure and replicate count (the
    runs with that many finished replicates, and their target; most replicated first)."""
    rows = counts(runs, results)
    done = sum(n >= goal for _, _, n, goal in rows)
    missing = sum(max(0, goal - n) for _, _, n, goal in rows)
    lines = [
        f"{done} of {len(rows)} runs have their target number of replicates; {missing} replicates are still to run.",
        "",
        "| figure | runs | replicates | target |",
        "| --- | --- | --- | --- |",
    ]
    groups: dict[tuple[str, int, int], list[str]] = {}
    for fig, name, n, goal in rows:
        groups.setdefault((fig, n, goal), []).append(name)
    order = {fig: i for i, fig in enumerate(runs)}
    for (fig, n, goal), members in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], -kv[0][1], kv[0][2])):
        mark = "" if n >= goal else " (open)"
        lines.append(f"| {fig} | {', '.join(f'`{m}`' for m in members)} | {n}{mark} | {goal} |")
    return "\n".join(lines)
