"""The README's headline table (paper against ours), written from the claims and committed runs.

The rows are ``reproduction/headline.yaml``: a figure, the setting, the paper's values and a template
whose fields are claim keys (``{fig2_70_16}``: the manifests' claim with that
key, measured on our replicates; ``{official.fig2_70_16}``: on the official code's runs).
:func:`table` renders it from verdicts for the README's ``headline`` fragment
(:mod:`reproduction.fragments`): ``make figures`` rewrites it, and ``tests/test_fresh.py`` fails when
the committed README differs from what the committed runs give.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from reproduction.claims import ClaimsTableError, Verdict

TABLE = Path(__file__).resolve().parent / "headline.yaml"
FIELDS = ("figure", "setting", "paper", "ours")
OFFICIAL = "official."


@dataclass(frozen=True)
class Row:
    figure: str
    setting: str
    paper: str
    ours: str  # template; its fields are claim keys

    def keys(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.ours) if name is not None]


def load_rows(path: Path | None = None) -> list[Row]:
    """The rows of the headline table at ``path`` (default ``reproduction/headline.yaml``)."""
    path = Path(path) if path is not None else TABLE
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ClaimsTableError(f"{path.name}: expected a list of rows, one per line of the table")
    out = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ClaimsTableError(f"{path.name} row {i}: expected a mapping with the fields {', '.join(FIELDS)}")
        if missing := [k for k in FIELDS if k not in row]:
            raise ClaimsTableError(f"{path.name} row {i}: missing field {missing[0]!r}; fields: {', '.join(FIELDS)}")
        if extra := [k for k in row if k not in FIELDS]:
            raise ClaimsTableError(f"{path.name} row {i}: unknown field {extra[0]!r}; fields: {', '.join(FIELDS)}")
        if not all(isinstance(row[k], str) for k in FIELDS):
            raise ClaimsTableError(f"{path.name} row {i}: every field must be text (quote it)")
        out.append(Row(*(" ".join(row[k].split()) for k in FIELDS)))
    return out


class _Cells(string.Formatter):
    """Looks a whole field name (``fig2_70_16``, ``official.fig2_70_16``) up as one key."""

    def __init__(self, cells: Mapping[str, str], where: str):
        self.cells, self.where = cells, where

    def get_field(self, field_name, args, kwargs):
        if field_name not in self.cells:
            plain = field_name.removeprefix(OFFICIAL)
            known = sorted(k for k in self.cells if not k.startswith(OFFICIAL))
            raise ClaimsTableError(f"{self.where}: unknown claim key {plain!r}; keys: {', '.join(known)}")
        return self.cells[field_name], field_name


def cell(verdict: Verdict) -> str:
    """A verdict's value for a table cell: the mean, with the min–max range and n over replicates."""
    return "—" if verdict.dist is None else verdict.dist.text(verdict.claim.fmt, short=True)


def table(rows: Sequence[Row], verdicts: Sequence[Verdict], official: Sequence[Verdict] | None = None) -> str:
    """The Markdown table of ``rows``, its fields filled from ``verdicts`` (and ``official``, in the
    same order; without it the ``official.`` fields print "—") by claim key."""
    cells = {v.claim.key: cell(v) for v in verdicts if v.claim.key}
    for i, v in enumerate(verdicts):  # without official runs, their cells are empty ("—")
        if v.claim.key:
            cells[OFFICIAL + v.claim.key] = "—" if official is None else cell(official[i])
    lines = ["| figure | setting | paper | ours |", "| --- | --- | --- | --- |"]
    for i, row in enumerate(rows, 1):
        ours = _Cells(cells, f"{TABLE.name} row {i}").format(row.ours)
        lines.append(f"| {row.figure} | {row.setting} | {row.paper} | {ours} |")
    return "\n".join(lines)
