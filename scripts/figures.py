"""Regenerate every experiment's figure and the claims report from ``results/`` (no training).

    python scripts/figures.py            # all figures + results/CLAIMS.md
    python scripts/figures.py fig2 fig7  # only these
    python scripts/figures.py --out /tmp/figs --claims /tmp/CLAIMS.md  # leave results/ untouched

Every experiment manifest with a ``plot`` (``reproduction/experiments/<name>.yaml``) is drawn, in
manifest order: by its ``plot.function`` (``path/to/file.py[:function]``, called with ``(results,
out_dir)`` in this process; ``main`` by default) where the figure needs custom drawing, else from its
panels alone (``reproduction.plotting.draw``). On partial results each figure draws the runs that
exist and marks the others; a figure that cannot be drawn without a missing run becomes a
placeholder naming it. The claims report is always written, with the claims of missing runs counted
as missing.
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

from reproduction.manifest import Experiment, ManifestError, experiments  # noqa: E402
from reproduction.plotting import FIGURES, draw, missing_figure  # noqa: E402
from reproduction.results import RESULTS  # noqa: E402

# what a plot function raises when results it needs are absent or unusable (MissingRun is a
# FileNotFoundError; KeyError: a summary or table without the expected entry)
MISSING = (FileNotFoundError, KeyError)


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plotter(exp: Experiment):
    """The function that draws ``exp``: its manifest's ``plot.function``, or the generic drawing."""
    if exp.plot.function is None:
        return lambda results, out: draw(exp, results, out)
    file, _, name = exp.plot.function.partition(":")
    path = ROOT / file
    if not path.is_file():
        raise ManifestError(f"{exp.path.name}: plot.function: {file} is not a file under {ROOT}")
    function = getattr(load(path), name or "main", None)
    if function is None:
        raise ManifestError(f"{exp.path.name}: plot.function: {file} has no function {name or 'main'}")
    return function


def main(argv: list[str] | None = None) -> None:
    try:
        drawn = {name: exp for name, exp in experiments().items() if exp.plot is not None}
    except ManifestError as e:
        sys.exit(f"error: {e}")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"figures to draw ({', '.join(drawn)}); default all")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default results/figures)")
    parser.add_argument(
        "--claims", type=Path, default=None, help="where to write the claims report (default <results>/CLAIMS.md)"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in drawn]
    if unknown:
        parser.error(f"unknown figure {unknown[0]}; choose from: {', '.join(drawn)}")
    out = args.out or (FIGURES if args.results == RESULTS else args.results / "figures")
    incomplete = []
    for name in args.names or drawn:
        start = time.time()
        try:
            plotter(drawn[name])(args.results, out)
        except ManifestError as e:
            sys.exit(f"error: {e}")
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
