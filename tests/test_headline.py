"""The README's headline table is written from the claims and the committed runs: its cells, its
errors, where it goes in the README, and that the committed README shows what the runs give."""

from __future__ import annotations

from pathlib import Path

import pytest

from reproduction.claims import Claim, ClaimsTableError, Distribution, Verdict, at_least, load_claims
from reproduction.headline import Row, load_rows, table

ROOT = Path(__file__).resolve().parent.parent


def verdict(key: str, values: tuple[float, ...], fmt: str = "{:.1f} %") -> Verdict:
    claim = Claim("Fig. X", key, "≈ 50 %", lambda r: None, at_least(0), "", fmt, key)
    return Verdict(claim, Distribution(values) if values else None, "holds" if values else "missing")


def test_a_cell_is_the_mean_with_its_range_and_n_and_the_unit_once():
    assert Distribution((26.2,)).text(short=True, fmt="{:.1f} %") == "26.2 %"
    assert Distribution((24.1, 30.5, 24.0)).text(short=True, fmt="{:.1f} %") == "26.2 % (24.0–30.5 %, n=3)"
    assert Distribution((2.0, 4.0)).text(short=True, fmt="×{:.1f}") == "×3.0 (×2.0–×4.0, n=2)"
    assert Distribution((100.0,), never=1).text(short=True, fmt="{:.0f}") == "100 (all equal, n=2, 1 never)"
    assert (
        Distribution((35.1, 38.2)).text(short=True, fmt="{:+.1f} points") == "+36.7 points (+35.1 to +38.2 points, n=2)"
    )
    assert Distribution((-39.0, -39.04)).span("{:+.1f} points") == "-39.0 points"
    assert Distribution((), never=2).text(short=True, fmt="{:.0f}") == "never (n=2)"


def test_the_table_fills_each_template_by_claim_key_ours_and_official():
    rows = [Row("2", "fp16 / fp32", "≈ 15 / 30", "{a} / {b} (official {official.a})")]
    ours = [verdict("a", (24.1, 30.5)), verdict("b", ())]
    official = [verdict("a", (29.4,)), verdict("b", ())]
    text = table(rows, ours, official).splitlines()
    assert text[0] == "| figure | setting | paper | ours |"
    assert text[2] == "| 2 | fp16 / fp32 | ≈ 15 / 30 | 27.3 % (24.1–30.5 %, n=2) / — (official 29.4 %) |"


def test_an_unknown_key_fails_with_one_line_naming_the_row_and_the_keys():
    with pytest.raises(ClaimsTableError) as err:
        table([Row("2", "", "", "{a} / {c}")], [verdict("a", (1.0,)), verdict("b", (2.0,))])
    assert str(err.value) == "headline.yaml row 1: unknown claim key 'c'; keys: a, b"
    with pytest.raises(ClaimsTableError, match="unknown claim key 'c'"):
        table([Row("2", "", "", "{official.c}")], [verdict("a", (1.0,))])
    # without official runs their cells are empty, as a claim without runs
    assert table([Row("2", "", "", "{a} ({official.a})")], [verdict("a", (1.0,))]).endswith("| 1.0 % (—) |")


def test_every_key_the_table_cites_is_a_claim_and_no_claim_key_repeats(tmp_path):
    keys = {c.key for c in load_claims() if c.key}
    cited = {k.removeprefix("official.") for row in load_rows() for k in row.keys()}
    assert cited and cited <= keys
    table_ = tmp_path / "claims.yaml"
    row = "- {key: a, figure: F, claim: c, paper: p, measure: pct_final, args: [f, r], check: {at_least: 1}, tolerance: t}\n"
    table_.write_text(row * 2)
    with pytest.raises(ClaimsTableError, match="claims.yaml row 2: key 'a' is already row 1's"):
        load_claims(table_)


def test_a_bad_row_fails_with_one_line_naming_the_row_and_the_field(tmp_path):
    rows = tmp_path / "headline.yaml"
    for text, message in [
        (
            "- {figure: '2', setting: s, paper: p}\n",
            "headline.yaml row 1: missing field 'ours'; fields: figure, setting, paper, ours",
        ),
        ("- {figure: '2', setting: s, paper: p, ours: o, note: n}\n", "row 1: unknown field 'note'"),
        ("- {figure: 2, setting: s, paper: p, ours: o}\n", "row 1: every field must be text"),
        ("- just text\n", "row 1: expected a mapping"),
        ("figure: '2'\n", "expected a list of rows"),
    ]:
        rows.write_text(text)
        with pytest.raises(ClaimsTableError, match=message):
            load_rows(rows)
