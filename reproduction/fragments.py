"""Generated text in the README and the docs: one marker syntax, one registry of renderers.

Every number that a page repeats from the committed runs sits between two HTML comments, which
Markdown does not show::

    ends at <!-- gen claim fig9_40_32 range -->9.1–31.6 %<!-- /gen --> over five replicates

``gen NAME ARGS``: ``NAME`` picks a renderer of :data:`RENDERERS`, ``ARGS`` (words) are its
arguments. :func:`rewrite` replaces the text between the comments and leaves every other character
of the page alone; a renderer that writes a block (a table) gets it on lines of its own.
``make figures`` rewrites every page of :data:`PAGES` (:func:`write_all`), and the freshness test
(``tests/test_fresh.py``) regenerates them all, and ``results/CLAIMS.md``, from ``results/`` and
fails on any difference from the committed files.

Renderers: ``claim KEY [FORM]`` (a claim's value, :mod:`reproduction.quoted`), ``counts FIGURE``
(the verdict counts of a figure's claims), ``counts-total [NOUN]`` (the counts over every figure
the page counts), ``headline`` (the README's paper-against-ours table), ``replicate-status``,
``spread`` (the claims within seed spread, one line each), ``study-table NAME`` (a study's report
table, ``results/<NAME>/table.md``, as ``python scripts/study.py NAME --report`` wrote it),
``study-cell NAME ARCH METHOD`` (one cell of it), ``study-compute NAME [ARCH]`` (the runs the
study made and their CPU-hours), ``study-methods NAME`` (its methods as the manifest defines them)
and ``summary`` (CLAIMS.md's summary line).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reproduction.claims import ClaimsTableError, Verdict, summary_line

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"<!-- gen (?P<name>[\w-]+)(?: (?P<args>[^>]*?))? -->(?P<text>.*?)<!-- /gen -->", re.S)


@dataclass
class Context:
    """What the renderers read: our verdicts and the official code's (same order; None without
    official runs), the results folder, and the page being rewritten."""

    verdicts: Sequence[Verdict]
    official: Sequence[Verdict] | None
    results: Path
    page: str = ""
    replicated: dict[str, dict[str, int]] = field(default_factory=dict)  # experiment -> run -> replicate target
    counted: list[str] = field(default_factory=list)  # the figures the page's ``counts`` markers name


Renderer = Callable[[Context, list[str]], str]
RENDERERS: dict[str, Renderer] = {}
BLOCKS: set[str] = set()  # renderers whose text stands on lines of its own


def renderer(name: str, block: bool = False) -> Callable[[Renderer], Renderer]:
    """Register a renderer under ``name`` (one name, one meaning)."""

    def add(fn: Renderer) -> Renderer:
        if name in RENDERERS:
            raise ValueError(f"renderer {name!r} is registered already")
        RENDERERS[name] = fn
        if block:
            BLOCKS.add(name)
        return fn

    return add


def rewrite(text: str, ctx: Context) -> str:
    """``text`` with every generated fragment rewritten; an unknown renderer, bad arguments or an
    unclosed marker is a one-line :class:`ClaimsTableError` naming the page."""
    if text.count("<!-- gen ") != text.count("<!-- /gen -->"):
        raise ClaimsTableError(
            f"{ctx.page}: {text.count('<!-- gen ')} '<!-- gen' markers but {text.count('<!-- /gen -->')} '<!-- /gen -->'"
        )
    ctx.counted = [m.group("args") for m in MARK.finditer(text) if m.group("name") == "counts"]

    def one(m: re.Match) -> str:
        name, args = m.group("name"), (m.group("args") or "").split()
        if "<!-- gen " in m.group("text"):
            raise ClaimsTableError(f"{ctx.page}: <!-- gen {name} --> is not closed before the next marker")
        if name not in RENDERERS:
            raise ClaimsTableError(
                f"{ctx.page}: unknown renderer {name!r}; choose from: {', '.join(sorted(RENDERERS))}"
            )
        out = RENDERERS[name](ctx, args)
        head = m.group(0)[: m.start("text") - m.start()]
        return f"{head}\n{out}\n<!-- /gen -->" if name in BLOCKS else f"{head}{out}<!-- /gen -->"

    return MARK.sub(one, text)


def pages(root: Path = ROOT) -> list[Path]:
    """The pages that hold generated fragments: the README and every page of ``docs/``."""
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if "<!-- gen " in p.read_text()]


def rendered(ctx: Context, root: Path = ROOT) -> dict[Path, str]:
    """Each page's text as the committed runs give it."""
    out = {}
    for page in pages(root):
        ctx.page = page.name
        out[page] = rewrite(page.read_text(encoding="utf-8"), ctx)
    return out


def write_all(ctx: Context, root: Path = ROOT) -> list[Path]:
    """Rewrite every page; returns the pages that changed."""
    changed = []
    for page, text in rendered(ctx, root).items():
        if page.read_text(encoding="utf-8") != text:
            page.write_text(text, encoding="utf-8")
            changed.append(page)
    return changed


# The renderers ------------------------------------------------------------------------------------


@renderer("claim")
def _claim(ctx: Context, args: list[str]) -> str:
    from reproduction import quoted

    if not 1 <= len(args) <= 2:
        raise ClaimsTableError(f"{ctx.page}: <!-- gen claim KEY [FORM] --> takes a claim key and a form, not {args}")
    return quoted.render(args[0], args[1] if len(args) > 1 else "mean", ctx.verdicts, ctx.official, ctx.page)


@renderer("counts")
def _counts(ctx: Context, args: list[str]) -> str:
    from reproduction import verdict_counts

    return verdict_counts.figure_phrase(" ".join(args), ctx.verdicts, ctx.page)


@renderer("counts-total")
def _counts_total(ctx: Context, args: list[str]) -> str:
    from reproduction import verdict_counts

    counts = verdict_counts.by_figure(ctx.verdicts)
    total = sum((verdict_counts.of_figure(counts, verdict_counts.figure_of(f)) for f in ctx.counted), Counter())
    return verdict_counts.phrase(total, " ".join([*args, "claim"]))


@renderer("headline", block=True)
def _headline(ctx: Context, args: list[str]) -> str:
    from reproduction.headline import load_rows, table

    return table(load_rows(), ctx.verdicts, ctx.official)


@renderer("replicate-status", block=True)
def _replicate_status(ctx: Context, args: list[str]) -> str:
    from reproduction import replicate_status

    return replicate_status.block(ctx.replicated, ctx.results)


@renderer("spread", block=True)
def _spread(ctx: Context, args: list[str]) -> str:
    """The claims within seed spread: figure, claim, our value, the band and how many replicates are in it."""
    rows = [v for v in ctx.verdicts if v.status == "within seed spread"]
    if not rows:
        return "- none"
    return "\n".join(
        f"- {v.claim.figure}: {v.claim.claim} — {v.ours}; paper {v.claim.paper}, band {v.claim.tolerance};"
        f" {v.in_band} replicates inside"
        for v in rows
    )


def _study(ctx: Context, renderer: str, args: list[str], usage: str = "NAME"):
    """The study that a ``study-*`` marker names first, its arguments checked against ``usage``."""
    from reproduction.manifest import ManifestError
    from reproduction.study import load

    if len(args) != len(usage.split()):
        words = [{"NAME": "a study name", "ARCH": "an architecture", "METHOD": "a method"}[w] for w in usage.split()]
        what = "one study name" if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
        raise ClaimsTableError(f"{ctx.page}: <!-- gen {renderer} {usage} --> takes {what}, not {args}")
    try:
        study = load(args[0])
    except ManifestError as e:
        raise ClaimsTableError(f"{ctx.page}: {renderer} {args[0]}: {e}") from None
    for word, value in zip(usage.split()[1:], args[1:]):
        known = {"ARCH": study.archs, "METHOD": study.methods}[word]
        if value not in known:
            raise ClaimsTableError(
                f"{ctx.page}: {renderer} {args[0]}: unknown {word.lower()} {value!r}; choose from: {', '.join(known)}"
            )
    return study


def _study_report(ctx: Context, renderer: str, name: str):
    """The study's report table (``results/<NAME>/table.csv``, as ``python scripts/study.py NAME
    --report`` wrote it)."""
    import pandas as pd

    path = ctx.results / name / "table.csv"
    if not path.is_file():
        raise ClaimsTableError(
            f"{ctx.page}: {renderer} {name}: {path} does not exist (python scripts/study.py {name} --report)"
        )
    return pd.read_csv(path)


@renderer("study-table", block=True)
def _study_table(ctx: Context, args: list[str]) -> str:
    """A tuned study's report as one row per method and one column per architecture: the median
    epochs to 99 % test of the fresh seeds with its 95 % interval and how many generalized, or how
    far the tuning got."""
    import pandas as pd

    from reproduction.study import median_interval

    study = _study(ctx, "study-table", args)
    table = _study_report(ctx, "study-table", args[0])
    archs = [a for a in study.archs if a in set(table["arch"])]

    def cell(r: pd.Series) -> str:
        if r["n"] > 0:
            return f"{median_interval(r, 99)}, {int(r['k_99'])}/{r['n']}" + (
                "" if r["n"] == len(study.fresh_seeds) else f" ({r['n']} of {len(study.fresh_seeds)} run)"
            )
        return f"tuning {r['tuning']}" if pd.isna(r["best"]) else f"{r['best']}: fresh seeds to run"

    lines = ["| method | " + " | ".join(study.archs[a].label for a in archs) + " |", "|---" * (len(archs) + 1) + "|"]
    for m, method in study.methods.items():
        rows = {r["arch"]: r for _, r in table[table["method"] == m].iterrows()}
        if rows:
            lines.append(f"| {method.label} | " + " | ".join(cell(rows[a]) if a in rows else "" for a in archs) + " |")
    return "\n".join(lines)


@renderer("study-cell")
def _study_cell(ctx: Context, args: list[str]) -> str:
    """One cell of a study's report: a method's median epochs to 99 % on an architecture's fresh
    seeds with its interval (``350 [280, 420]``)."""
    from reproduction.study import median_interval

    _study(ctx, "study-cell", args, "NAME ARCH METHOD")
    table = _study_report(ctx, "study-cell", args[0])
    rows = table[(table["arch"] == args[1]) & (table["method"] == args[2])]
    if rows.empty or not rows.iloc[0]["n"] > 0:
        raise ClaimsTableError(f"{ctx.page}: study-cell {' '.join(args)}: the report has no fresh runs of that cell")
    return median_interval(rows.iloc[0], 99)


@renderer("study-compute")
def _study_compute(ctx: Context, args: list[str]) -> str:
    """The runs a study made and their CPU time (:func:`reproduction.study.spent`), on every
    architecture or on ``ARCH``: ``670 runs, 19.5 CPU-hours``."""
    from reproduction.study import spent

    study = _study(ctx, "study-compute", args, "NAME" if len(args) < 2 else "NAME ARCH")
    runs, seconds = spent(study, args[1] if len(args) > 1 else None)
    return f"{runs} runs, {seconds / 3600:.1f} CPU-hours"


@renderer("study-methods", block=True)
def _study_methods(ctx: Context, args: list[str]) -> str:
    """A study's methods as its manifest defines them (:mod:`reproduction.study_methods`)."""
    from reproduction.study_methods import methods_markdown

    return methods_markdown(_study(ctx, "study-methods", args))


@renderer("summary")
def _summary(ctx: Context, args: list[str]) -> str:
    return summary_line(ctx.verdicts, ctx.official)
