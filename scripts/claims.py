"""Hold the paper's checkable claims against ``results/`` and write ``results/CLAIMS.md``.

    python scripts/claims.py

With official-code runs under ``results/official/<commit>/`` (``scripts/official.py``), the same
claims are measured on them and every deviation of ours is classed (paper only / ours only / not
checkable). Claims are listed in ``scripts/claims_main.py`` (Figs. 1-7) and ``scripts/claims_appendix.py``
(Figs. 8-16, Table 1); each is a :class:`grokking.claims.Claim`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from grokking.claims import Claim, evaluate, report, summary_line  # noqa: E402
from grokking.results import RESULTS  # noqa: E402


def all_claims() -> list[Claim]:
    claims = []
    for name in ("claims_main", "claims_appendix"):
        path = HERE / f"{name}.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            claims += module.CLAIMS
    return claims


OFFICIAL_COMMIT = "720d244"  # the fixed snapshot: its runs are the official column


def main(results: Path = RESULTS, out: Path | None = None, official_commit: str = OFFICIAL_COMMIT) -> str:
    claims = all_claims()
    verdicts = [evaluate(c, results) for c in claims]
    official_root = results / "official" / official_commit
    official = [evaluate(c, official_root) for c in claims] if official_root.is_dir() else None
    (out or results / "CLAIMS.md").write_text(report(verdicts, official, official_commit))
    line = summary_line(verdicts, official)
    print(line)
    return line


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS)
    main(parser.parse_args().results)
