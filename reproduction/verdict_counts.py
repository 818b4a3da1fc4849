"""The verdict counts in the figure headings of a document, written from the verdicts of
``results/CLAIMS.md`` so that they cannot drift from it.

A heading such as ``## Fig. 9 — normalized SGD ... (17 claims: 5 hold, 1 within seed spread,
11 deviate)`` names a figure of ``reproduction/claims.yaml`` (``Table 1 analog`` names the claims'
``Table 1 (analog)``; ``Fig. 1`` counts the claims of its panels ``Fig. 1a``, ``Fig. 1b``, ...);
``rewrite`` replaces its parenthesis with that figure's counts, in the order holds, within seed
spread, deviates, missing, and a bold total such as ``**43 appendix claims: ...**`` or
``**61 main-text claims: ...**`` with the counts over every figure the headings name. Headings
without a ``(N claim...)`` parenthesis are left alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from reproduction.claims import VERDICTS, ClaimsTableError, Verdict

PLURAL = {"holds": "hold", "deviates": "deviate"}  # "1 holds", "3 hold"; the others do not change
ALIASES = {"Table 1 analog": "Table 1 (analog)"}  # heading name -> the claims' figure
HEADING = re.compile(r"^(## (Fig\. \d+[a-z]?|Table 1 analog)\b.*?)\(\d+ claims?\b[^)]*\)", re.M)
TOTAL = re.compile(r"\*\*\d+ ([\w-]+ )?claims?\b[^*]*\*\*")


def phrase(counts: Counter[str], noun: str = "claim") -> str:
    """``counts`` (verdict -> claims) in words: "2 claims, both hold", "10 claims: 3 hold, 3 within
    seed spread, 4 deviate", "1 claim, holds" (``noun``: "claim", or e.g. "appendix claim")."""
    n = sum(counts.values())
    present = [v for v in VERDICTS if counts[v]]
    if n == 1:
        return f"1 {noun}, {present[0]}"
    if len(present) == 1:
        return f"{n} {noun}s, {'both' if n == 2 else 'all'} {PLURAL.get(present[0], present[0])}"
    parts = (f"{counts[v]} {v if counts[v] == 1 else PLURAL.get(v, v)}" for v in present)
    return f"{n} {noun}s: {', '.join(parts)}"


def by_figure(verdicts: Sequence[Verdict]) -> dict[str, Counter[str]]:
    """Verdict counts per figure label of the claims (e.g. ``Fig. 9``, ``Fig. 1b``)."""
    out: dict[str, Counter[str]] = {}
    for v in verdicts:
        out.setdefault(v.claim.figure, Counter())[v.status] += 1
    return out


def of_figure(counts: dict[str, Counter[str]], figure: str) -> Counter[str]:
    """The counts of ``figure`` and of its panels (``Fig. 1`` -> ``Fig. 1a`` + ``Fig. 1b`` + ...)."""
    panel = re.compile(re.escape(figure) + r"[a-z]?")
    return sum((c for f, c in counts.items() if panel.fullmatch(f)), Counter())


def rewrite(text: str, verdicts: Sequence[Verdict], name: str) -> str:
    """``text`` with the counts of every figure heading rewritten from ``verdicts``; a heading whose
    figure has no claims is an error naming it (``name`` is the document, for the message)."""
    counts = by_figure(verdicts)
    named: list[str] = []

    def one(m: re.Match) -> str:
        figure = ALIASES.get(m.group(2), m.group(2))
        found = of_figure(counts, figure)
        if not found:
            raise ClaimsTableError(f"{name}: heading {m.group(0)!r} counts claims of {figure}, which has none")
        named.append(found)
        return f"{m.group(1)}({phrase(found)})"

    text = HEADING.sub(one, text)
    total = sum(named, Counter())
    return TOTAL.sub(lambda m: f"**{phrase(total, (m.group(1) or '') + 'claim')}**", text)
