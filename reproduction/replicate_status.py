"""How many finished replicates each run has, against its target: the status table of
``docs/replicates.md``, written from ``results/`` so that it cannot drift from the committed runs.

A replicate counts once its run has finished (``completed`` or ``diverged`` in its summary.json):
replicate 0 is ``results/<experiment>/<run>/``, replicate k lies in ``results/replicates/<k>/``. Each
run's target is its manifest's (``replicates``; ``reproduction.manifest.replicated_runs``): 5 for the
paper's runs, 3 for the 80k- and 100k-epoch runs (Figs. 1b, 1c and 4). Runs that only vary another
run's init seed (an explicit ``seed=`` or ``seeds=``) are not replicated and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reproduction.results import Replicate, completed, replicate_indices, run_dir

START = "<!-- replicates: written by `make figures` from results/; do not edit -->"
END = "<!-- /replicates -->"


def finished(figure: str, run: str, results: Path) -> int:
    """The number of finished replicates of ``figure/run`` under ``results``."""
    return sum(completed(run_dir(figure, run, Replicate(results, k))) for k in replicate_indices(results))


def counts(runs: Mapping[str, Mapping[str, int]], results: Path) -> list[tuple[str, str, int, int]]:
    """(experiment, run, finished replicates, target) of every run of ``runs`` (experiment -> run ->
    target), in its order."""
    return [(fig, name, finished(fig, name, results), goal) for fig in runs for name, goal in runs[fig].items()]


def block(runs: Mapping[str, Mapping[str, int]], results: Path) -> str:
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
