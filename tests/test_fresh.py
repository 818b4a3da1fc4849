"""The freshness test: every generated file regenerated from the committed runs equals the committed one.

``results/CLAIMS.md`` and every generated fragment of the README and the docs
(``reproduction.fragments``) are regenerated from ``results/`` in memory; any difference from the
committed text fails, naming the file. ``make figures`` rewrites them all.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from reproduction import fragments
from reproduction.claims import ClaimsTableError, judge_all, report
from reproduction.manifest import replicated_runs
from reproduction.official import OFFICIAL_COMMIT
from reproduction.results import RESULTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def judged():
    verdicts, official = judge_all(RESULTS, OFFICIAL_COMMIT)
    return verdicts, official


def context(judged) -> fragments.Context:
    verdicts, official = judged
    return fragments.Context(verdicts, official, RESULTS, replicated=replicated_runs())


def first_difference(committed: str, fresh: str, name: str) -> str:
    diff = difflib.unified_diff(committed.splitlines(), fresh.splitlines(), "committed", "fresh", lineterm="", n=0)
    return f"{name} is stale (run `make figures`):\n" + "\n".join(list(diff)[:12])


def test_claims_report_is_what_the_committed_runs_give(judged):
    verdicts, official = judged
    committed = (RESULTS / "CLAIMS.md").read_text()
    fresh = report(verdicts, official, OFFICIAL_COMMIT)
    assert committed == fresh, first_difference(committed, fresh, "results/CLAIMS.md")


def test_every_generated_fragment_is_what_the_committed_runs_give(judged):
    pages = fragments.rendered(context(judged), ROOT)
    assert {p.name for p in pages} >= {"README.md", "figures_main.md", "figures_appendix.md", "replicates.md"}
    for page, fresh in pages.items():
        committed = page.read_text(encoding="utf-8")
        assert committed == fresh, first_difference(committed, fresh, str(page.relative_to(ROOT)))


def test_a_hand_edited_fragment_is_caught(judged, tmp_path):
    """Edit one quoted value of a copy of the README: the regenerated page differs, at that place only."""
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    text = (tmp_path / "README.md").read_text()
    start = text.index("<!-- gen claim ")
    value_at = text.index("-->", start) + 3
    edited = text[:value_at] + "99.9 %" + text[text.index("<!-- /gen -->", value_at) :]
    (tmp_path / "README.md").write_text(edited)
    [(page, fresh)] = fragments.rendered(context(judged), tmp_path).items()
    assert fresh != edited and fresh == text


def test_every_renderer_is_used_or_tested():
    used = set()
    for page in fragments.pages(ROOT):
        used |= {m.group("name") for m in fragments.MARK.finditer(page.read_text())}
    assert used <= set(fragments.RENDERERS)
    assert set(fragments.RENDERERS) - used <= {"summary"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a <!-- gen nope -->x<!-- /gen -->", "page.md: unknown renderer 'nope'; choose from: claim, counts,"),
        ("a <!-- gen claim -->x<!-- /gen -->", "page.md: <!-- gen claim KEY [FORM] --> takes a claim key and a form"),
        ("a <!-- gen claim fig2_70_16 -->x", "page.md: 1 '<!-- gen' markers but 0 '<!-- /gen -->'"),
        ("a <!-- gen claim fig2_70_16 odd -->x<!-- /gen -->", "page.md: quoted claim 'fig2_70_16' has an unknown form"),
        ("a <!-- gen counts Fig. 99 -->x<!-- /gen -->", "page.md: counts of Fig. 99, which has no claims"),
        ("a <!-- gen study-table -->x<!-- /gen -->", "page.md: <!-- gen study-table NAME --> takes one study name"),
        ("a <!-- gen study-table nope -->x<!-- /gen -->", "page.md: study-table nope: "),
        (
            "a <!-- gen study-cell study_interventions mlp2 -->x<!-- /gen -->",
            "page.md: <!-- gen study-cell NAME ARCH METHOD --> takes a study name, an architecture and a method",
        ),
        (
            "a <!-- gen study-cell study_interventions mlp3 norm -->x<!-- /gen -->",
            "page.md: study-cell study_interventions: unknown arch 'mlp3'; choose from: mlp2, mlp1, transformer",
        ),
        (
            "a <!-- gen study-compute study_interventions mlp2 x -->x<!-- /gen -->",
            "page.md: <!-- gen study-compute NAME ARCH --> takes a study name and an architecture",
        ),
    ],
)
def test_a_bad_marker_is_one_line_naming_the_page(judged, text, message):
    ctx = context(judged)
    ctx.page = "page.md"
    with pytest.raises(ClaimsTableError) as err:
        fragments.rewrite(text, ctx)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_the_spread_list_names_each_claim_within_seed_spread_with_k_of_n(judged):
    ctx = context(judged)
    block = fragments.RENDERERS["spread"](ctx, [])
    within = [v for v in judged[0] if v.status == "within seed spread"]
    assert len(block.splitlines()) == max(1, len(within))
    for v in within:
        assert f"{v.in_band} replicates inside" in block
