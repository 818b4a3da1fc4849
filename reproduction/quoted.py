"""Claim values quoted in the prose of a document, written from the claims' verdicts so that the
prose cannot drift from ``results/CLAIMS.md`` as replicates come in.

A quoted value sits between two HTML comments, which Markdown does not show::

    ends at <!-- claim fig9_40_32 -->20.4 %<!-- /claim --> on average (<!-- claim fig9_40_32 range -->9.1–31.6 %<!-- /claim -->)

``claim KEY`` names a claim of ``reproduction/claims.yaml`` by its ``key``; an optional form says what
to write (``FORMS``), ``official-`` before it reads the official code's value. :func:`rewrite`
replaces the text between the comments and leaves every other character of the document alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from reproduction.claims import ClaimsTableError, Distribution, Verdict, split_unit

QUOTE = re.compile(r"<!-- claim (?P<key>[\w.-]+)(?: (?P<form>[\w-]+))? -->(?P<text>.*?)<!-- /claim -->", re.S)
WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def _number(fmt: str, value: float) -> str:
    return split_unit(fmt)[0].format(value)


FORMS: dict[str, Callable[[Distribution, str], str]] = {  # a lower bound's values start with "≥ "
    "mean": lambda d, fmt: d.prefix + fmt.format(d.mean),  # "20.4 %"
    "number": lambda d, fmt: d.prefix + _number(fmt, d.mean),  # "20.4"
    "range": lambda d, fmt: d.prefix + d.span(fmt),  # "9.1–31.6 %"
    "min": lambda d, fmt: d.prefix + fmt.format(min(d.values)),
    "max": lambda d, fmt: d.prefix + fmt.format(max(d.values)),
    "n": lambda d, fmt: str(d.n),  # "2"
    "n-word": lambda d, fmt: WORDS.get(d.n, str(d.n)),  # "two"
    "short": lambda d, fmt: d.text(fmt, short=True) + ("" if d.n > 1 else " (n=1)"),  # "20.4 % (9.1–31.6 %, n=2)"
}


def quote(verdict: Verdict, form: str) -> str:
    """``verdict``'s value written in ``form`` (a key of ``FORMS``, or ``verdict``: its status)."""
    if form == "verdict":
        return verdict.status
    dist = verdict.dist
    if dist is None or not dist.values:
        return "—"
    return FORMS[form](dist, verdict.claim.fmt)


def rewrite(text: str, verdicts: Sequence[Verdict], official: Sequence[Verdict] | None, name: str) -> str:
    """``text`` with every quoted value rewritten from ``verdicts`` (the official code's from
    ``official``); an unknown key or form is an error naming the document (``name``) and the choices."""
    ours = {v.claim.key: v for v in verdicts if v.claim.key}
    theirs = {v.claim.key: v for v in official or () if v.claim.key}
    forms = ", ".join([*FORMS, "verdict"])

    def one(m: re.Match) -> str:
        key, form = m.group("key"), m.group("form") or "mean"
        if "<!-- claim " in m.group("text"):
            raise ClaimsTableError(
                f"{name}: quoted claim {key!r} is not closed by <!-- /claim --> before the next quote"
            )
        table = theirs if form.startswith("official-") else ours
        form = form.removeprefix("official-")
        if key not in ours:
            raise ClaimsTableError(
                f"{name}: quoted claim {key!r} is not a key of claims.yaml; keys: {', '.join(sorted(ours))}"
            )
        if form not in FORMS and form != "verdict":
            raise ClaimsTableError(f"{name}: quoted claim {key!r} has an unknown form {form!r}; choose from: {forms}")
        if key not in table:
            raise ClaimsTableError(
                f"{name}: quoted claim {key!r} asks for the official code's value, which is not given"
            )
        head = m.group(0)[: m.start("text") - m.start()]
        return f"{head}{quote(table[key], form)}<!-- /claim -->"

    return QUOTE.sub(one, text)
