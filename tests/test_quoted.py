"""Claim values quoted in prose are written from the claims' verdicts: every form, the text around
them kept, one-line errors, and that the committed pages quote what the committed runs give."""

from __future__ import annotations

import pytest

from reproduction import fragments
from reproduction.claims import Claim, ClaimsTableError, Distribution, Verdict, at_most
from reproduction.quoted import FORMS, quote


def rewrite(text: str, ours, official, page: str) -> str:
    return fragments.rewrite(text, fragments.Context(ours, official, results=None, page=page))


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
    doc = f"ends at <!-- gen claim fig9_40_32{form} -->old<!-- /gen --> on average."
    assert (
        rewrite(doc, OURS, OFFICIAL, "doc.md")
        == f"ends at <!-- gen claim fig9_40_32{form} -->{text}<!-- /gen --> on average."
    )


def test_a_signed_range_reads_from_to():
    doc = "<!-- gen claim spread range -->old<!-- /gen -->"
    ours = [verdict("spread", (-0.4, 3.9), fmt="{:+.1f} points")]
    assert rewrite(doc, ours, None, "doc.md") == "<!-- gen claim spread range -->-0.4 to +3.9 points<!-- /gen -->"
    alike = [verdict("spread", (-39.01, -38.99), fmt="{:+.1f} points")]
    assert rewrite(doc, alike, None, "doc.md") == "<!-- gen claim spread range -->-39.0 points<!-- /gen -->"


def test_a_single_run_says_so_in_the_short_form():
    doc = "<!-- gen claim fig9_diff short -->old<!-- /gen -->"
    assert rewrite(doc, OURS, None, "doc.md") == "<!-- gen claim fig9_diff short -->+2.4 points (n=1)<!-- /gen -->"


def test_every_form_is_tested():
    tested = {"mean", "number", "range", "min", "max", "n", "n-word", "short"}
    assert set(FORMS) == tested


def test_the_text_around_quotes_is_kept_and_a_second_rewrite_changes_nothing():
    doc = (
        "# Fig. 9\n\nOurs <!-- gen claim fig9_40_32 -->1 %<!-- /gen -->,\nordering "
        "<!-- gen claim fig9_diff -->x<!-- /gen --> (official: <!-- gen claim fig9_diff official-mean -->y<!-- /gen -->).\n"
    )
    out = rewrite(doc, OURS, OFFICIAL, "doc.md")
    assert out == (
        "# Fig. 9\n\nOurs <!-- gen claim fig9_40_32 -->20.4 %<!-- /gen -->,\nordering "
        "<!-- gen claim fig9_diff -->+2.4 points<!-- /gen --> (official: <!-- gen claim fig9_diff official-mean -->—<!-- /gen -->).\n"
    )
    assert rewrite(out, OURS, OFFICIAL, "doc.md") == out
    assert rewrite("no quotes here", OURS, None, "doc.md") == "no quotes here"


@pytest.mark.parametrize(
    "doc, official, message",
    [
        (
            "<!-- gen claim fig99 -->1<!-- /gen -->",
            OFFICIAL,
            r"doc.md: quoted claim 'fig99' is not a claim key; keys: fig9_40_32, fig9_diff",
        ),
        (
            "<!-- gen claim fig9_diff median -->1<!-- /gen -->",
            OFFICIAL,
            r"doc.md: quoted claim 'fig9_diff' has an unknown form 'median'; choose from: mean, number",
        ),
        (
            "<!-- gen claim fig9_diff -->1 and <!-- gen claim fig9_40_32 -->2<!-- /gen -->",
            OFFICIAL,
            r"doc.md: 2 '<!-- gen' markers but 1 '<!-- /gen -->'",
        ),
        (
            "<!-- gen claim fig9_diff official-n -->1<!-- /gen -->",
            None,
            r"doc.md: quoted claim 'fig9_diff' asks for the official code's value, which is not given",
        ),
    ],
)
def test_a_bad_quote_is_a_one_line_error_naming_the_document_and_the_choices(doc, official, message):
    with pytest.raises(ClaimsTableError, match=message):
        rewrite(doc, OURS, official, "doc.md")


def test_the_figure_pages_quote_claim_values():
    names = {p.name for p in fragments.pages()}
    assert {"figures_main.md", "figures_appendix.md", "README.md", "official.md"} <= names


def test_a_lower_bound_is_quoted_with_its_sign():
    claim = Claim("Fig. 2", "a claim", "≈ 0 points", lambda r: None, at_most(5), "≤ 5 points", "{:+.1f} points", "k")
    bound = Verdict(claim, Distribution((38.9,), bound=True), "deviates")
    assert [quote(bound, f) for f in ("mean", "short", "number", "n")] == [
        "≥ +38.9 points",
        "≥ +38.9 points (n=1)",
        "≥ +38.9",
        "1",
    ]


def test_the_class_form_writes_the_deviation_class():
    ours = [verdict("fig9_40_32", (30.0, 31.6))]
    official = [verdict("fig9_40_32", (30.0, 31.0, 32.0))]
    assert rewrite("<!-- gen claim fig9_40_32 class -->x<!-- /gen -->", ours, official, "doc.md") == (
        "<!-- gen claim fig9_40_32 class -->paper only<!-- /gen -->"
    )
    with pytest.raises(ClaimsTableError, match="asks for its class, which needs the official runs"):
        rewrite("<!-- gen claim fig9_40_32 class -->x<!-- /gen -->", ours, None, "doc.md")
