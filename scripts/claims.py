"""Hold the paper's checkable claims against ``results/`` and write ``results/CLAIMS.md``.

    python scripts/claims.py

The claims are the ``claims`` rows of the experiment manifests (``reproduction/experiments/``, one
row per claim; ``reproduction.claims.load_claims`` reads them), their measures are in ``reproduction/measures/``.
With official-code runs under ``results/official/<commit>/`` (``scripts/official.py``), the same
claims are measured on them and every deviation of ours is classed (paper only / unsettled / ours only / not
checkable).

Run on the committed ``results/`` (the default, and ``make figures``), it also rewrites every
generated fragment of the README and the docs from the same verdicts (``reproduction.fragments``:
the headline table, quoted claim values, verdict counts, the replicate status, the claims within
seed spread) and the re-check reports of ``scripts/recheck.py``; with ``--results`` or another
output it leaves them alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from reproduction import fragments, recheck  # noqa: E402
from reproduction.claims import ClaimsTableError, judge_all, report, summary_line  # noqa: E402
from reproduction.manifest import replicated_runs  # noqa: E402
from reproduction.official import OFFICIAL_COMMIT  # noqa: E402
from reproduction.results import RESULTS, damage_warning  # noqa: E402


def main(results: Path = RESULTS, out: Path | None = None, official_commit: str = OFFICIAL_COMMIT) -> str:
    verdicts, official = judge_all(results, official_commit)
    warning = damage_warning(results)  # damaged runs are excluded from n: say which
    (out or results / "CLAIMS.md").write_text(report(verdicts, official, official_commit, warning))
    if Path(results).resolve() == RESULTS.resolve() and out is None:
        recheck.write_committed(results, verdicts)
        fragments.write_all(fragments.Context(verdicts, official, results, replicated=replicated_runs()))
    line = summary_line(verdicts, official)
    print(line)
    return line


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS)
    try:
        main(parser.parse_args().results)
    except ClaimsTableError as err:
        sys.exit(f"error: {err}")
