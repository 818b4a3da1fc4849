"""Is ⊥AdamW or StableMax faster than a tuned weight decay? Run the study and write its report.

    python scripts/study_baselines.py run      # the grid, as Hydra multiruns of train.py (skips completed runs)
    python scripts/study_baselines.py extend   # more epochs for the censored seeds of the best settings
    python scripts/study_baselines.py report   # table, tidy CSV, heat maps and curves from the runs

The study is the manifest ``reproduction/experiments/study_baselines.yaml`` (architectures, lrs,
methods, their decays, the settings beyond the grid, the budgets of ``extend``); this command is its
entry point with the grid's own options, and ``python scripts/study.py study_baselines`` runs the
same study (``--plan`` prices it). ``run`` trains, per architecture and method, every setting
(one ``python train.py -m`` over the seeds each) into
``<out>/<arch>/<method>_lr<lr>_wd<decay>_s<seed>/``; a rerun skips completed runs and resumes
interrupted ones from their checkpoint. ``--lrs``, ``--decays`` and ``--replicates`` run a sub-grid
(with no settings beyond it). ``report`` is :mod:`reproduction.study_grid`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reproduction import study as studies  # noqa: E402
from reproduction import study_grid  # noqa: E402
from reproduction.manifest import ManifestError  # noqa: E402

NAME = "study_baselines"


def floats(text: str | None) -> list[float] | None:
    return [float(v) for v in text.split(",")] if text else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    training = argparse.ArgumentParser(add_help=False)  # the options `run` and `extend` share
    training.add_argument("--replicates", type=int, help="seeds 0..N-1 (split and init; default: the manifest's)")
    training.add_argument("--out", help="run directories go to <out>/<arch>/ (default: the manifest's study.runs)")
    training.add_argument(
        "--set", action="append", default=[], help="extra override for every run, e.g. --set epochs=50"
    )
    training.add_argument("--dry-run", action="store_true", help="print the multiruns without running them")
    training.add_argument("--archs", help="comma-separated: mlp2, mlp1, transformer (default: all)")
    ranking = argparse.ArgumentParser(add_help=False)  # the option `extend` and `report` share
    ranking.add_argument("--min-replicates", type=int, help="settings with fewer finished seeds are not ranked")
    r = sub.add_parser(
        "run", parents=[training], help="train the grid (skips completed runs, resumes interrupted ones)"
    )
    r.add_argument("--methods", help="comma-separated: perpgrad, adamw, stablemax (default: all)")
    r.add_argument("--lrs", help="comma-separated learning rates (default: the architecture's grid)")
    r.add_argument("--decays", help="comma-separated AdamW weight decays (default: the architecture's grid)")
    e = sub.add_parser(
        "extend", parents=[training, ranking], help="more epochs for the censored seeds of best settings"
    )
    e.add_argument("--epochs", type=int, help="the new budget (default: the manifest's study.extend)")
    p = sub.add_parser("report", parents=[ranking], help="write the table, CSVs and figures from the runs")
    p.add_argument("--runs", help="run directories (default: the manifest's study.runs)")
    p.add_argument("--out", default=str(ROOT / "results" / NAME))
    p.add_argument("--figures", default=str(ROOT / "results" / "figures"))
    args = parser.parse_args(argv)
    try:
        study = studies.load(NAME)
        if args.command == "report":
            runs_dir = Path(args.runs) if args.runs else study.runs
            print(study_grid.report(study, runs_dir, Path(args.out), Path(args.figures), args.min_replicates), end="")
            print(f"wrote {args.out}/runs.csv, settings.csv/.md, table.md, curves.csv and {args.figures}/{NAME}_*.png")
            return 0
        seeds = list(range(args.replicates)) if args.replicates else None
        archs = studies.choose(args.archs, list(study.archs), "archs")
        runs_dir = Path(args.out) if args.out else study.runs
        if args.command == "extend":
            study = studies.restrict(study, seeds=seeds)
            commands = study_grid.extend_commands(study, runs_dir, archs, args.epochs, args.min_replicates)
            if not commands:
                print("every best setting that generalized did so on all its seeds: nothing to extend")
            failures = 0
            for cmd in commands:
                cmd = [*cmd, *args.set]
                print(" ".join(["train.py -m", *cmd[3:]]), flush=True)
                if not args.dry_run:
                    rc = studies.launch(cmd)
                    if rc == 130:
                        return 130
                    failures += rc != 0
            return 1 if failures else 0
        study = studies.restrict(study, floats(args.lrs), floats(args.decays), seeds)
        methods = studies.choose(args.methods, list(study.methods), "methods")
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    epochs = [int(s.split("=", 1)[1]) for s in args.set if s.startswith("epochs=")]
    runs = studies.Runs(study, runs_dir, {a: epochs[-1] for a in archs} if epochs else None)
    return studies.run(runs, archs, methods, args.set, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
