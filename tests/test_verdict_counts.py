"""The verdict counts in the figure headings of the figure pages are written from the claims' verdicts:
their wording, the headings they replace, their errors, and that the committed page is current."""

from __future__ import annotations

from collections import Counter

import pytest

from reproduction.claims import Claim, ClaimsTableError, Verdict, at_least
from reproduction.verdict_counts import HEADING, TOTAL, phrase, rewrite
from scripts.claims import COUNTED


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
        "Intro: **9 appendix claims, 9 hold**.\n\n"
        "## Fig. 8 — SC by intervention (3 claims, all deviate)\n\ntext (2 claims: 1 holds) stays\n\n"
        "## Fig. 9 — SGD (10 claims: 4 hold, 6 deviate), and more\n\n"
        "## Fig. 12 — no counts here\n\n"
        "## Table 1 analog (2 claims, both hold)\n"
    )
    vs = [
        *verdicts("Fig. 8", "deviates", "holds"),
        *verdicts("Fig. 9", "holds", "within seed spread", "deviates"),
        *verdicts("Table 1 (analog)", "holds"),
        *verdicts("Fig. 12", "holds"),  # no counted heading: not in the total
    ]
    out = rewrite(doc, vs, "doc.md")
    assert "## Fig. 8 — SC by intervention (2 claims: 1 holds, 1 deviates)\n" in out
    assert "## Fig. 9 — SGD (3 claims: 1 holds, 1 within seed spread, 1 deviates), and more\n" in out
    assert "## Table 1 analog (1 claim, holds)\n" in out
    assert "**6 appendix claims: 3 hold, 1 within seed spread, 2 deviate**" in out
    assert "text (2 claims: 1 holds) stays" in out and "## Fig. 12 — no counts here\n" in out
    assert rewrite(out, vs, "doc.md") == out


def test_a_heading_counting_a_figure_without_claims_is_an_error_naming_it():
    with pytest.raises(ClaimsTableError, match=r"doc.md: heading .*Fig. 3.* which has none"):
        rewrite("## Fig. 3 — s(x) (1 claim, holds)\n", verdicts("Fig. 8", "holds"), "doc.md")


def test_a_figure_heading_counts_the_claims_of_all_its_panels_and_only_those():
    doc = "**1 main-text claim, holds**\n\n## Fig. 1 — three panels (1 claim, holds)\n"
    vs = verdicts("Fig. 1a", "holds", "holds") + verdicts("Fig. 1c", "deviates") + verdicts("Fig. 10", "holds")
    out = rewrite(doc, vs, "doc.md")
    assert "## Fig. 1 — three panels (3 claims: 2 hold, 1 deviates)\n" in out
    assert out.startswith("**3 main-text claims: 2 hold, 1 deviates**")


@pytest.mark.parametrize("doc", COUNTED, ids=lambda p: p.name)
def test_the_committed_pages_count_what_the_committed_runs_give(doc, committed_verdicts):
    """Fails when a verdict changed and `make figures` was not run to rewrite the headings."""
    text = doc.read_text(encoding="utf-8")
    fresh = rewrite(text, committed_verdicts[0], doc.name)
    stale = [line for line in fresh.splitlines() if line not in text.splitlines()]
    assert not stale, f"{doc.name}'s verdict counts are stale; `make figures` rewrites them. Now: {stale}"


def test_every_page_with_counts_has_a_counted_heading_and_a_total():
    for doc in COUNTED:
        text = doc.read_text(encoding="utf-8")
        assert HEADING.search(text) and TOTAL.search(text), doc.name
