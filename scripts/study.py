"""Run a tuned comparison of methods (a manifest's ``study`` section) and write its report.

    python scripts/study.py study_interventions            # train what is missing, then report
    python scripts/study.py study_interventions --plan     # price the runs left, per architecture and method
    python scripts/study.py study_interventions --report   # table and figure from whatever runs exist
    python scripts/study.py study_interventions --dry-run  # the multiruns it would launch now

Each method is tuned over lr × its own parameter on the tuning seeds; its best setting then runs on
fresh seeds, and only those enter the report (``reproduction/study.py`` says how); a ``grid`` study
(``study_baselines``) runs every setting on the same seeds and reports with
``reproduction/study_grid.py``. A rerun skips
finished runs and resumes cut ones from their checkpoint. docs/study_interventions.md describes the
study.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "name", nargs="?", default="study_interventions", help="the manifest (reproduction/experiments/)"
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--plan", action="store_true", help="price the runs left, then stop")
    action.add_argument("--report", action="store_true", help="only write the report")
    action.add_argument("--dry-run", action="store_true", help="print the multiruns it would launch now")
    parser.add_argument("--archs", help="comma-separated architectures (default: all)")
    parser.add_argument("--methods", help="comma-separated methods (default: all)")
    parser.add_argument("--runs", help="run folder (default: the manifest's study.runs)")
    parser.add_argument("--out", help="report folder (default: results/<name>/)")
    parser.add_argument("--figures", default=str(ROOT / "results" / "figures"), help="the figure's folder")
    parser.add_argument(
        "--set", action="append", default=[], help="extra override for every run, e.g. --set device=cuda"
    )
    args = parser.parse_args(argv)
    try:
        study = studies.load(args.name)
        archs = studies.choose(args.archs, list(study.archs), "archs")
        methods = studies.choose(args.methods, list(study.methods), "methods")
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    epochs = [int(s.split("=", 1)[1]) for s in args.set if s.startswith("epochs=")]
    runs = studies.Runs(
        study, Path(args.runs) if args.runs else None, {a: epochs[-1] for a in archs} if epochs else None
    )
    if args.plan:
        print(studies.plan_text(studies.price(runs, archs, methods)), end="")
        return 0
    rc = 0
    if not args.report:
        rc = studies.run(runs, archs, methods, args.set, dry_run=args.dry_run)
        if rc == 130 or args.dry_run:
            return rc
    out = Path(args.out) if args.out else ROOT / "results" / study.name
    if study.protocol == "grid":  # every setting on the same seeds: the grid's own report
        try:
            print(study_grid.report(study, runs.root, out, Path(args.figures)), end="")
        except ManifestError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {out}/runs.csv, settings.csv/.md, table.md, curves.csv and {args.figures}/{study.name}_*.png")
        return rc
    figure = Path(args.figures) / f"{study.name}.png"
    # the report covers the whole study (whatever runs exist), not only the part trained now
    print(studies.report(runs, list(study.archs), list(study.methods), out, figure), end="")
    print(f"wrote {out}/table.md, table.csv, tuning.csv, curves.csv and {figure}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
