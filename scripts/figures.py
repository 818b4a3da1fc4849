"""Regenerate every figure and the claims report from ``results/`` (no training).

    python scripts/figures.py            # all figures + results/CLAIMS.md
    python scripts/figures.py fig2 fig7  # only these
    python scripts/figures.py --out /tmp/figs --claims /tmp/CLAIMS.md  # leave results/ untouched

Each ``scripts/plot_<name>.py`` has ``main(results: Path, out_dir: Path)``; they run in this process.
On partial results each figure draws the runs that exist and marks the others; a figure that cannot
be drawn without a missing run becomes a placeholder naming it. The claims report is always
written, with the claims of missing runs counted as missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from reproduction.plotting import FIGURES, missing_figure  # noqa: E402
from reproduction.results import RESULTS  # noqa: E402

# what a plot script raises when results it needs are absent or unusable (MissingRun is a
# FileNotFoundError; KeyError: a summary or table without the expected entry)
MISSING = (FileNotFoundError, KeyError)


def plot_scripts() -> dict[str, Path]:
    return {p.stem.removeprefix("plot_"): p for p in sorted(HERE.glob("plot_*.py"))}


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    scripts = plot_scripts()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"figures to draw ({', '.join(scripts)}); default all")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default results/figures)")
    parser.add_argument(
        "--claims", type=Path, default=None, help="where to write the claims report (default <results>/CLAIMS.md)"
    )
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in scripts]
    if unknown:
        parser.error(f"unknown figure {unknown[0]}; choose from: {', '.join(scripts)}")
    out = args.out or (FIGURES if args.results == RESULTS else args.results / "figures")
    incomplete = []
    for name in args.names or scripts:
        start = time.time()
        try:
            load(scripts[name]).main(args.results, out)
        except MISSING as e:
            import matplotlib.pyplot as plt

            plt.close("all")
            reason = str(e).strip("'\"")
            missing_figure(name, reason, out)
            incomplete.append(name)
            print(f"{name}: results missing ({reason}); drew a placeholder")
            continue
        print(f"{name}: {time.time() - start:.1f} s")
    if not args.names:
        load(HERE / "claims.py").main(args.results, args.claims)
    if incomplete:
        print(f"{len(incomplete)} figures lack results: {', '.join(incomplete)}")


if __name__ == "__main__":
    main()
