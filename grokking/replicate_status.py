"""How many finished replicates each run has, against its target: the status table of
``docs/replicates.md``, written from ``results/`` so that it cannot drift from the committed runs.

A replicate counts once its run has finished (``completed`` or ``diverged`` in its summary.json):
replicate 0 is ``results/<figure>/<run>/``, replicate k lies in ``results/replicates/<k>/``. The
target is 5 replicates per run, 3 for the 80k- and 100k-epoch runs (Figs. 1b, 1c and 4). Runs that
only vary another run's init seed (an explicit ``seed=`` or ``seeds=``) are not replicated and are
left out; ``scripts/claims.py`` passes the rest of ``scripts/reproduce.py``'s run table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from grokking.results import Replicate, completed, replicate_indices, run_dir

START = "<!-- replicates: written by `make figures` from results/; do not edit -->"
END = "<!-- /replicates -->"
TARGET, LONG_TARGET, LONG_EPOCHS = 5, 3, 80_000


def finished(figure: str, run: str, results: Path) -> int:
    """The number of finished replicates of ``figure/run`` under ``results``."""
    return sum(completed(run_dir(figure, run, Replicate(results, k))) for k in replicate_indices(results))


def target(figure: str, run: str, results: Path) -> int:
    """The replicates a run should have: 3 for runs of 80k epochs or more, else 5."""
    try:
        epochs = int(json.loads((run_dir(figure, run, results) / "summary.json").read_text())["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return TARGET
    return LONG_TARGET if epochs >= LONG_EPOCHS else TARGET


def table(runs: Mapping[str, Sequence[str]], results: Path) -> str:
    """One Markdown row per figure and replicate count: the runs with that many finished replicates,
    and their target; a figure's rows run from the most replicated down."""
    lines = ["| figure | runs | replicates | target |", "| --- | --- | --- | --- |"]
    for figure, names in runs.items():
        groups: dict[tuple[int, int], list[str]] = {}
        for name in names:
            groups.setdefault((finished(figure, name, results), target(figure, name, results)), []).append(name)
        for (n, goal), members in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
            mark = "" if n >= goal else " (open)"
            lines.append(f"| {figure} | {', '.join(f'`{m}`' for m in members)} | {n}{mark} | {goal} |")
    return "\n".join(lines)


def totals(runs: Mapping[str, Sequence[str]], results: Path) -> str:
    """One line: how many runs have reached their target, and how many replicates are missing."""
    done = missing = count = 0
    for figure, names in runs.items():
        for name in names:
            n, goal = finished(figure, name, results), target(figure, name, results)
            count += 1
            done += n >= goal
            missing += max(0, goal - n)
    return f"{done} of {count} runs have their target number of replicates; {missing} replicates are still to run."
