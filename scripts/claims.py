"""Hold the paper's checkable claims against ``results/`` and write ``results/CLAIMS.md``.

    python scripts/claims.py

The claims are the rows of the manifests ``reproduction/experiments/*.yaml`` (Figs. 1-16, Table 1 analog; one row per
claim; ``reproduction.claims.load_claims`` reads them), their measures are in ``reproduction/measures/``.
With official-code runs under ``results/official/<commit>/`` (``scripts/official.py``), the same
claims are measured on them and every deviation of ours is classed (paper only / ours only / not
checkable).

Run on the committed ``results/`` (the default, and ``make figures``), it also rewrites the README's
headline table (``reproduction/headline.yaml``, between the README's headline markers) from the same
verdicts, the replicate status table of ``docs/replicates.md`` (``reproduction/replicate_status.py``) and
the verdict counts in the figure headings of ``docs/figures_main.md`` and
``docs/figures_appendix.md`` (``reproduction/verdict_counts.py``), the claim values quoted in the prose
of those pages, the README, ``docs/replicates.md`` and ``docs/official.md`` (``reproduction/quoted.py``) and the re-check
reports of ``scripts/recheck.py``; with ``--results`` or another output it leaves them alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from reproduction import quoted, replicate_status, verdict_counts  # noqa: E402
from reproduction.claims import ClaimsTableError, evaluate, load_claims, report, summary_line  # noqa: E402
from reproduction.headline import load_rows, replace_block, table  # noqa: E402
from reproduction.manifest import replicated_runs  # noqa: E402
from reproduction.official import OFFICIAL_COMMIT  # noqa: E402
from reproduction.results import RESULTS  # noqa: E402
from scripts import recheck  # noqa: E402

README = HERE.parent / "README.md"
STATUS = HERE.parent / "docs" / "replicates.md"
COUNTED = tuple(HERE.parent / "docs" / f"figures_{part}.md" for part in ("main", "appendix"))  # headings with counts
OFFICIAL_DOC = HERE.parent / "docs" / "official.md"
QUOTING = (*COUNTED, STATUS, OFFICIAL_DOC, README)  # prose that quotes claim values (reproduction/quoted.py)


def main(results: Path = RESULTS, out: Path | None = None, official_commit: str = OFFICIAL_COMMIT) -> str:
    claims = load_claims()
    rows = load_rows()
    verdicts = [evaluate(c, results) for c in claims]
    official_root = results / "official" / official_commit
    official = [evaluate(c, official_root) for c in claims] if official_root.is_dir() else None
    (out or results / "CLAIMS.md").write_text(report(verdicts, official, official_commit))
    if Path(results).resolve() == RESULTS.resolve() and out is None:
        headline = table(rows, verdicts, official)
        README.write_text(replace_block(README.read_text(encoding="utf-8"), headline), encoding="utf-8")
        STATUS.write_text(replicate_block(STATUS.read_text(encoding="utf-8"), results), encoding="utf-8")
        recheck.write_committed(results, verdicts)
        for doc in COUNTED:
            counted = verdict_counts.rewrite(doc.read_text(encoding="utf-8"), verdicts, doc.name)
            doc.write_text(counted, encoding="utf-8")
        for doc in QUOTING:
            text = quoted.rewrite(doc.read_text(encoding="utf-8"), verdicts, official, doc.name)
            doc.write_text(text, encoding="utf-8")
    line = summary_line(verdicts, official)
    print(line)
    return line


def replicate_block(text: str, results: Path = RESULTS) -> str:
    """``text`` (docs/replicates.md) with its status table rewritten from the runs under ``results``."""
    block = replicate_status.block(replicated_runs(), results)
    return replace_block(text, block, STATUS.name, replicate_status.START, replicate_status.END)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS)
    try:
        main(parser.parse_args().results)
    except ClaimsTableError as err:
        sys.exit(f"error: {err}")
