"""Claim values quoted in prose are written from the claims' verdicts: every form, the text around
them kept, one-line errors, and that the committed pages quote what the committed runs give."""

from __future__ import annotations

import pytest

from reproduction.claims import Claim, ClaimsTableError, Distribution, Verdict, at_most
from reproduction.quoted import FORMS, QUOTE, quote, rewrite
from scripts.claims import QUOTING


def verdict(key: str, values: tuple[float, ...], status: str = "deviates", fmt: str = "{:.1f} %") -> Verdict:
    claim = Claim("Fig. 9", "a claim", "≈ 0 %", lambda r: None, at_most(10), "≤ 10 %", fmt, key)
    return Verdict(claim, Distribution(values) if values else None, status)


OURS = [verdict("fig9_40_32", (9.1, 31.6)), verdict("fig9_diff", (2.44,), "holds", "{:+.1f} points")]
OFFICIAL = [verdict("fig9_40_32", (12.0,), "within seed spread"), verdict("fig9_diff", ())]


@pytest.mark.parametrize(
    "form, text",
    [
        ("", "20.4 %"),
        (" mean", "20.4 %"),
        (" number", "20.4"),
        (" range", "9.1–31.6 %"),
        (" min", "9.1 %"),
        (" max", "31.6 %"),
        (" n", "2"),
        (" n-word", "two"),
        (" short", "20.4 % (9.1–31.6 %, n=2)"),
        (" verdict", "deviates"),
        (" official-mean", "12.0 %"),
        (" official-verdict", "within seed spread"),
    ],
)
def test_each_form_writes_the_value_between_the_comments(form, text):
    doc = f"ends at <!-- claim fig9_40_32{form} -->old<!-- /claim --> on average."
    assert (
        rewrite(doc, OURS, OFFICIAL, "doc.md")
        == f"ends at <!-- claim fig9_40_32{form} -->{text}<!-- /claim --> on average."
    )


def test_a_signed_range_reads_from_to():
    doc = "<!-- claim spread range -->old<!-- /claim -->"
    ours = [verdict("spread", (-0.4, 3.9), fmt="{:+.1f} points")]
    assert rewrite(doc, ours, None, "doc.md") == "<!-- claim spread range -->-0.4 to +3.9 points<!-- /claim -->"
    alike = [verdict("spread", (-39.01, -38.99), fmt="{:+.1f} points")]
    assert rewrite(doc, alike, None, "doc.md") == "<!-- claim spread range -->-39.0 points<!-- /claim -->"


def test_a_single_run_says_so_in_the_short_form():
    doc = "<!-- claim fig9_diff short -->old<!-- /claim -->"
    assert rewrite(doc, OURS, None, "doc.md") == "<!-- claim fig9_diff short -->+2.4 points (n=1)<!-- /claim -->"


def test_every_form_is_tested():
    tested = {"mean", "number", "range", "min", "max", "n", "n-word", "short"}
    assert set(FORMS) == tested


def test_the_text_around_quotes_is_kept_and_a_second_rewrite_changes_nothing():
    doc = (
        "# Fig. 9\n\nOurs <!-- claim fig9_40_32 -->1 %<!-- /claim -->,\nordering "
        "<!-- claim fig9_diff -->x<!-- /claim --> (official: <!-- claim fig9_diff official-mean -->y<!-- /claim -->).\n"
    )
    out = rewrite(doc, OURS, OFFICIAL, "doc.md")
    assert out == (
        "# Fig. 9\n\nOurs <!-- claim fig9_40_32 -->20.4 %<!-- /claim -->,\nordering "
        "<!-- claim fig9_diff -->+2.4 points<!-- /claim --> (official: <!-- claim fig9_diff official-mean -->—<!-- /claim -->).\n"
    )
    assert rewrite(out, OURS, OFFICIAL, "doc.md") == out
    assert rewrite("no quotes here", OURS, None, "doc.md") == "no quotes here"


@pytest.mark.parametrize(
    "doc, official, message",
    [
        (
            "<!-- claim fig99 -->1<!-- /claim -->",
            OFFICIAL,
            r"doc.md: quoted claim 'fig99' is not a key of claims.yaml; keys: fig9_40_32, fig9_diff",
        ),
        (
            "<!-- claim fig9_diff median -->1<!-- /claim -->",
            OFFICIAL,
            r"doc.md: quoted claim 'fig9_diff' has an unknown form 'median'; choose from: mean, number",
        ),
        (
            "<!-- claim fig9_diff -->1 and <!-- claim fig9_40_32 -->2<!-- /claim -->",
            OFFICIAL,
            r"doc.md: quoted claim 'fig9_diff' is not closed by <!-- /claim --> before the next quote",
        ),
        (
            "<!-- claim fig9_diff official-n -->1<!-- /claim -->",
            None,
            r"doc.md: quoted claim 'fig9_diff' asks for the official code's value, which is not given",
        ),
    ],
)
def test_a_bad_quote_is_a_one_line_error_naming_the_document_and_the_choices(doc, official, message):
    with pytest.raises(ClaimsTableError, match=message):
        rewrite(doc, OURS, official, "doc.md")


@pytest.mark.parametrize("doc", QUOTING, ids=lambda p: p.name)
def test_the_committed_pages_quote_what_the_committed_runs_give(doc, committed_verdicts):
    """Fails when a claim's value changed and `make figures` was not run to rewrite the prose."""
    text = doc.read_text(encoding="utf-8")
    fresh = rewrite(text, *committed_verdicts, doc.name)
    stale = [m.group(0) for m in QUOTE.finditer(fresh) if m.group(0) not in text]
    assert not stale, f"{doc.name} quotes stale claim values; `make figures` rewrites them. Now: {stale}"


def test_the_figure_pages_quote_claim_values():
    assert all(QUOTE.search(doc.read_text(encoding="utf-8")) for doc in QUOTING[:2])


def test_a_lower_bound_is_quoted_with_its_sign():
    claim = Claim("Fig. 2", "a claim", "≈ 0 points", lambda r: None, at_most(5), "≤ 5 points", "{:+.1f} points", "k")
    bound = Verdict(claim, Distribution((38.9,), bound=True), "deviates")
    assert [quote(bound, f) for f in ("mean", "short", "number", "n")] == [
        "≥ +38.9 points",
        "≥ +38.9 points (n=1)",
        "≥ +38.9",
        "1",
    ]
