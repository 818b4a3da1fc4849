"""The verdict counts in the figure headings of the figure pages are written from the claims' verdicts:
their wording, the headings they replace, their errors, and that the committed page is current."""

from __future__ import annotations

from collections import Counter

import pytest

from reproduction import fragments
from reproduction.claims import Claim, ClaimsTableError, Verdict, at_least
from reproduction.verdict_counts import phrase


def rewrite(text: str, vs: list[Verdict], page: str) -> str:
    return fragments.rewrite(text, fragments.Context(vs, None, results=None, page=page))


def counts(figure: str, text: str) -> str:
    return f"<!-- gen counts {figure} -->{text}<!-- /gen -->"


def total(noun: str, text: str) -> str:
    return f"<!-- gen counts-total {noun} -->{text}<!-- /gen -->"


def verdicts(figure: str, *statuses: str) -> list[Verdict]:
    claim = Claim(figure, "a claim", "≈ 1", lambda r: None, at_least(0), "")
    return [Verdict(claim, None, s) for s in statuses]


@pytest.mark.parametrize(
    "counts, words",
    [
        ({"holds": 1}, "1 claim, holds"),
        ({"holds": 2}, "2 claims, both hold"),
        ({"deviates": 3}, "3 claims, all deviate"),
        ({"deviates": 1, "holds": 1}, "2 claims: 1 holds, 1 deviates"),
        ({"deviates": 4, "within seed spread": 3, "holds": 3}, "10 claims: 3 hold, 3 within seed spread, 4 deviate"),
        ({"missing": 2, "holds": 5}, "7 claims: 5 hold, 2 missing"),
    ],
)
def test_counts_read_in_the_order_holds_spread_deviates_missing(counts, words):
    assert phrase(Counter(counts)) == words


def test_stale_headings_and_their_total_are_rewritten_and_the_rest_is_kept():
    doc = (
        f"Intro: **{total('appendix', '9 appendix claims, 9 hold')}**.\n\n"
        f"## Fig. 8 — SC by intervention ({counts('Fig. 8', '3 claims, all deviate')})\n\ntext (2 claims: 1 holds) stays\n\n"
        f"## Fig. 9 — SGD ({counts('Fig. 9', '10 claims: 4 hold, 6 deviate')}), and more\n\n"
        "## Fig. 12 — no counts here\n\n"
        f"## Table 1 analog ({counts('Table 1 analog', '2 claims, both hold')})\n"
    )
    vs = [
        *verdicts("Fig. 8", "deviates", "holds"),
        *verdicts("Fig. 9", "holds", "within seed spread", "deviates"),
        *verdicts("Table 1 (analog)", "holds"),
        *verdicts("Fig. 12", "holds"),  # no counted heading: not in the total
    ]
    out = rewrite(doc, vs, "doc.md")
    assert f"## Fig. 8 — SC by intervention ({counts('Fig. 8', '2 claims: 1 holds, 1 deviates')})\n" in out
    assert (
        f"## Fig. 9 — SGD ({counts('Fig. 9', '3 claims: 1 holds, 1 within seed spread, 1 deviates')}), and more" in out
    )
    assert f"## Table 1 analog ({counts('Table 1 analog', '1 claim, holds')})\n" in out
    assert f"**{total('appendix', '6 appendix claims: 3 hold, 1 within seed spread, 2 deviate')}**" in out
    assert "text (2 claims: 1 holds) stays" in out and "## Fig. 12 — no counts here\n" in out
    assert rewrite(out, vs, "doc.md") == out


def test_a_heading_counting_a_figure_without_claims_is_an_error_naming_it():
    with pytest.raises(ClaimsTableError, match=r"doc.md: counts of Fig. 3, which has no claims"):
        rewrite(f"## Fig. 3 — s(x) ({counts('Fig. 3', '1 claim, holds')})\n", verdicts("Fig. 8", "holds"), "doc.md")


def test_a_figure_heading_counts_the_claims_of_all_its_panels_and_only_those():
    doc = (
        f"**{total('main-text', '1 main-text claim, holds')}**\n\n## Fig. 1 — three panels ({counts('Fig. 1', 'x')})\n"
    )
    vs = verdicts("Fig. 1a", "holds", "holds") + verdicts("Fig. 1c", "deviates") + verdicts("Fig. 10", "holds")
    out = rewrite(doc, vs, "doc.md")
    assert f"## Fig. 1 — three panels ({counts('Fig. 1', '3 claims: 2 hold, 1 deviates')})\n" in out
    assert out.startswith(f"**{total('main-text', '3 main-text claims: 2 hold, 1 deviates')}**")


def test_every_figure_page_counts_its_headings_and_a_total():
    for name in ("figures_main.md", "figures_appendix.md"):
        text = (fragments.ROOT / "docs" / name).read_text(encoding="utf-8")
        assert "<!-- gen counts Fig. " in text and "<!-- gen counts-total " in text, name
