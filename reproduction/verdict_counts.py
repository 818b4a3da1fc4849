"""The verdict counts of a figure's claims in words, for the ``counts FIGURE`` and
``counts-total NOUN`` fragments of :mod:`reproduction.fragments` (the figure headings of the
figure pages), so that they cannot drift from ``results/CLAIMS.md``.

``Fig. 1`` counts the claims of its panels ``Fig. 1a``, ``Fig. 1b``, ...; ``Table 1 analog`` names
the claims' ``Table 1 (analog)``. Counts read in the order holds, within seed spread, deviates,
missing: "10 claims: 3 hold, 3 within seed spread, 4 deviate".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from reproduction.claims import VERDICTS, ClaimsTableError, Verdict

PLURAL = {"holds": "hold", "deviates": "deviate"}  # "1 holds", "3 hold"; the others do not change
ALIASES = {"Table 1 analog": "Table 1 (analog)"}  # heading name -> the claims' figure


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


def figure_of(name: str) -> str:
    """The claims' figure label of a heading's name (``Table 1 analog`` -> ``Table 1 (analog)``)."""
    return ALIASES.get(name, name)


def figure_phrase(name: str, verdicts: Sequence[Verdict], page: str) -> str:
    """The verdict counts of the figure ``name`` (and its panels) in words; a figure without
    claims is an error naming the page."""
    found = of_figure(by_figure(verdicts), figure_of(name))
    if not found:
        raise ClaimsTableError(f"{page}: counts of {name}, which has no claims")
    return phrase(found)
