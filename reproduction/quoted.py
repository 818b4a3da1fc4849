"""Claim values quoted in the prose of a document, written from the claims' verdicts so that the
prose cannot drift from ``results/CLAIMS.md`` as replicates come in.

A quoted value is the fragment ``claim KEY [FORM]`` of :mod:`reproduction.fragments`: ``KEY`` names
a claim by its ``key``; the optional form says what to write (``FORMS``, ``verdict``, or ``class``: the class of a
deviation against the official code, "no deviation" where ours does not deviate),
``official-`` before it reads the official code's value (:func:`render`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reproduction.claims import ClaimsTableError, Distribution, Verdict, deviation_class, split_unit

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


def render(key: str, form: str, verdicts: Sequence[Verdict], official: Sequence[Verdict] | None, page: str) -> str:
    """The value of the claim ``key`` in ``form`` (``official-FORM``: the official code's); an
    unknown key or form is an error naming the page and the choices."""
    ours = {v.claim.key: v for v in verdicts if v.claim.key}
    theirs = {v.claim.key: v for v in official or () if v.claim.key}
    table = theirs if form.startswith("official-") else ours
    plain = form.removeprefix("official-")
    if key not in ours:
        raise ClaimsTableError(f"{page}: quoted claim {key!r} is not a claim key; keys: {', '.join(sorted(ours))}")
    if plain == "class":
        if official is None:
            raise ClaimsTableError(f"{page}: quoted claim {key!r} asks for its class, which needs the official runs")
        return deviation_class(ours[key], theirs.get(key)) or "no deviation"
    if plain not in FORMS and plain != "verdict":
        forms = ", ".join([*FORMS, "verdict", "class"])
        raise ClaimsTableError(f"{page}: quoted claim {key!r} has an unknown form {plain!r}; choose from: {forms}")
    if key not in table:
        raise ClaimsTableError(f"{page}: quoted claim {key!r} asks for the official code's value, which is not given")
    return quote(table[key], plain)
