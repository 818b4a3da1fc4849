"""Checkable claims of the paper, held against the distribution of our replicates.

The claims are the ``claims`` rows of the experiment manifests (``reproduction/experiments/``), one
row per claim: figure, wording, the paper's value, a measure of :mod:`reproduction.measures` with its
arguments, a check (``at_least``, ``at_most``, ``within``, ``between``, ``in_range``, below), the
tolerance in words and a format.
:func:`load_claims` turns the rows into :class:`Claim` objects and names the row of any error.

A :class:`Claim` names the paper's value, measures ours from one replicate of ``results/`` and
says whether a value agrees within a stated tolerance. :func:`evaluate` measures it on every
replicate (``reproduction.results.replicates``) and gives one of four verdicts:

- *holds*: the mean over replicates is within tolerance (and every replicate has a value);
- *within seed spread*: the mean is not, but some value in our replicates' min-max range is;
- *deviates*: neither;
- *missing*: no replicate has the runs the claim needs.

``scripts/claims.py`` writes ``results/CLAIMS.md`` with one row per claim, the official code's
verdict beside ours (the same measures on ``results/official/<commit>/``) and, for every
deviation of ours, its class: *paper only* (the official code deviates too), *ours only* (the
official code holds) or *not checkable* (no official run answers it).
"""

from __future__ import annotations

import inspect
import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from grokking.registry import Registry
from reproduction.measures import MEASURES
from reproduction.measures.registry import AtLeast
from reproduction.results import Replicate, replicates

MISSING = (FileNotFoundError, KeyError, IndexError)
VERDICTS = ("holds", "within seed spread", "deviates", "missing")
CLASSES = ("paper only", "unsettled", "ours only", "not checkable")
MIN_OFFICIAL_SEEDS = 3  # official seeds that a "paper only" class rests on


@dataclass(frozen=True)
class Claim:
    figure: str  # e.g. "Fig. 2"
    claim: str  # what the paper says, in a few words
    paper: str  # the paper's value, as written in PAPER.md
    measure: Callable[[Replicate], float | None]  # our value on one replicate (None: never reached)
    holds: Check  # the values that agree within the tolerance
    tolerance: str  # the tolerance, in words (e.g. "within ±10 points")
    fmt: str = "{:.3g}"  # how to print our value
    key: str = ""  # a short name other tables cite the claim by (reproduction/headline.yaml)
    categorical: bool = False  # the values are choices (e.g. the best of a sweep): the mode is reported


def bootstrap_ci(values: Sequence[float], level: float = 0.95, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (deterministic: a fixed RNG seed)."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choice(values) for _ in range(n)) / n for _ in range(draws))
    lo = means[int((1 - level) / 2 * draws)]
    hi = means[min(draws - 1, int((1 + level) / 2 * draws))]
    return lo, hi


def split_unit(fmt: str) -> tuple[str, str]:
    """A value format split at the end of its field: ``"{:.1f} %"`` -> ``("{:.1f}", " %")``."""
    end = fmt.rindex("}") + 1
    return fmt[:end], fmt[end:]


@dataclass(frozen=True)
class Distribution:
    """A claim's values over replicates; ``never`` counts replicates whose measure was None (a
    milestone never reached). ``bound``: the values are lower bounds (:class:`AtLeast`), printed
    after "≥"."""

    values: tuple[float, ...]
    never: int = 0
    bound: bool = False

    @property
    def n(self) -> int:
        return len(self.values) + self.never

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def prefix(self) -> str:
        """What every printed value starts with: "≥ " for lower bounds, else nothing."""
        return "≥ " if self.bound else ""

    @property
    def ci(self) -> tuple[float, float] | None:
        """The 95 % bootstrap interval of the mean that is printed (n ≥ 5)."""
        return bootstrap_ci(self.values) if len(self.values) >= 5 else None

    def ci_overlaps(self, holds: Check, points: int = 401) -> bool:
        """Whether the 95 % bootstrap interval of the mean (over at least two values) meets the
        band of ``holds``: the condition for *within seed spread*."""
        if len(self.values) < 2:
            return False
        lo, hi = bootstrap_ci(self.values)
        return any(holds(lo + (hi - lo) * i / (points - 1)) for i in range(points))

    def inside(self, holds: Callable[[float], bool]) -> int:
        """How many replicates have a value inside the band (a milestone never reached is outside)."""
        return sum(bool(holds(v)) for v in self.values)

    @property
    def mode(self) -> tuple[float, int] | None:
        """The most frequent value and its count (the smallest of equally frequent values)."""
        if not self.values:
            return None
        counts = {v: self.values.count(v) for v in sorted(set(self.values))}
        best = max(counts.values())
        return next((v, c) for v, c in counts.items() if c == best)

    def side(self, holds: Check, categorical: bool = False) -> str:
        """Where the replicates miss the band: "below", "above" or "inside" by their mean (by their
        mode for a categorical claim, by the smallest bound for lower bounds), "never" when no
        replicate reached the milestone."""
        if not self.values:
            return "never"
        if self.bound:
            value = min(self.values)
        elif categorical:
            value = self.mode[0]
        else:
            value = self.mean
        return holds.side(value)

    def mode_text(self, fmt: str) -> str:
        """A categorical claim's values: the mode with its count and every value seen,
        ``6 (mode, 2 of 5; values 6, 8)``."""
        if not self.values:
            return f"never (n={self.n})"
        value, count = self.mode
        if self.n == 1:
            return fmt.format(value)
        seen = ", ".join(fmt.format(v) for v in sorted(set(self.values)))
        never = f", {self.never} never" if self.never else ""
        return f"{fmt.format(value)} (mode, {count} of {self.n}; values {seen}{never})"

    def ends(self, fmt: str) -> tuple[str, str]:
        """The smallest and largest value as ``fmt``'s field prints them, without its unit."""
        number = split_unit(fmt)[0]
        return number.format(min(self.values)), number.format(max(self.values))

    def span(self, fmt: str, ends: tuple[str, str] | None = None) -> str:
        """The min–max range (or the two ``ends`` given, printed by ``fmt``'s field) with ``fmt``'s
        unit once: ``9.1–31.6 %``; signed ends read ``+3.9 to +5.3 points``; ends that print alike
        are one value."""
        (lo, hi), unit = ends or self.ends(fmt), split_unit(fmt)[1]
        if lo == hi:
            return lo + unit
        return f"{lo}{' to ' if lo[:1] in '+-' else '–'}{hi}{unit}"

    def text(self, fmt: str, short: bool = False) -> str:
        """The mean, and in parentheses the 95 % bootstrap interval (n ≥ 5), the min–max range, the
        replicates that never reached the milestone, and n. ``short`` (a table cell or a quote)
        keeps the range and n: ``26.2 % (24.1–30.5 %, n=3)``, or ``100.0 % (all equal, n=5)``
        where the range's ends print alike. One run is its value alone; lower bounds start with "≥"."""
        if not self.values:
            return f"never (n={self.n})"
        mean = self.prefix + fmt.format(self.mean)
        if self.n == 1:
            return mean
        lo_text, hi_text = self.ends(fmt)
        equal = lo_text == hi_text
        never = f"{self.never} never" if self.never else ""
        if short:
            parts = ["all equal" if equal else self.span(fmt, (lo_text, hi_text)), f"n={self.n}"] + (
                [never] if never else []
            )
            return f"{mean} ({', '.join(parts)})"
        parts = ["all equal" if equal else f"range {self.span(fmt, (lo_text, hi_text))}"]
        if self.ci and not equal:
            number = split_unit(fmt)[0]
            parts.insert(0, "95 % CI " + self.span(fmt, (number.format(self.ci[0]), number.format(self.ci[1]))))
        if never:
            parts.append(never)
        return f"{mean} ({'; '.join(parts)}; n={self.n})"


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    dist: Distribution | None
    status: str  # one of VERDICTS
    robust: tuple[str, str] | None = None  # the verdicts with the slack halved and doubled (approx checks)

    @property
    def value(self) -> float | None:
        if self.dist is None:
            return None
        if self.claim.categorical and self.dist.values:
            return self.dist.mode[0]
        return self.dist.mean

    @property
    def ours(self) -> str:
        if self.dist is None:
            return "—"
        return self.dist.mode_text(self.claim.fmt) if self.claim.categorical else self.dist.text(self.claim.fmt)

    @property
    def in_band(self) -> str:
        """How many replicates fall inside the band: ``3 of 5``."""
        if self.dist is None or self.dist.bound:
            return "—"
        return f"{self.dist.inside(self.claim.holds)} of {self.dist.n}"

    @property
    def robustness(self) -> str:
        """The verdict with the slack halved and doubled, ``holds / holds``; "as stated" for a bound
        the paper gives (no slack to vary)."""
        if self.dist is None:
            return "—"
        return "as stated" if self.robust is None else " / ".join(self.robust)


def measure_all(claim: Claim, reps: list[Replicate]) -> Distribution | None:
    """The claim's values over ``reps``. A lower bound (:class:`AtLeast`, some of a replicate's runs
    stopped early) counts only where no replicate has an exact value or a milestone never reached."""
    values, bounds, never = [], [], 0
    for rep in reps:
        try:
            value = claim.measure(rep)
        except MISSING:
            continue
        if value is None:
            never += 1
        else:
            (bounds if isinstance(value, AtLeast) else values).append(float(value))
    if values or never:
        return Distribution(tuple(values), never)
    return Distribution(tuple(bounds), bound=True) if bounds else None


def judge(claim: Claim, dist: Distribution, holds: Check) -> str:
    """The verdict of ``dist`` against the band ``holds``:

    - *holds*: the mean is inside the band and every replicate reached the milestone (for a
      categorical claim: most replicates are inside);
    - *within seed spread*: the mean is not, but the 95 % bootstrap interval of the mean meets the
      band (categorical: as many replicates inside as outside);
    - *deviates*: neither.
    Lower bounds decide only where every value above the smallest of them gets the same verdict."""
    if dist.bound:
        decided = holds.above(min(dist.values))
        return {True: "holds", False: "deviates", None: "missing"}[decided]
    if claim.categorical:
        inside, outside = dist.inside(holds), dist.n - dist.inside(holds)
        return "holds" if 2 * inside > dist.n else "deviates" if 2 * outside > dist.n else "within seed spread"
    if dist.mean is not None and not dist.never and holds(dist.mean):
        return "holds"
    if dist.ci_overlaps(holds):
        return "within seed spread"
    return "deviates"


def evaluate(claim: Claim, root: Path | Replicate | list[Replicate]) -> Verdict:
    """Measure ``claim`` on every replicate of ``root`` (a results folder), on one replicate, or on
    a list of them, and judge it (:func:`judge`); replicates that lack the claim's runs are left out.
    An approximate check is also judged with its slack halved and doubled."""
    reps = root if isinstance(root, list) else [root] if isinstance(root, Replicate) else replicates(Path(root))
    dist = measure_all(claim, reps)
    if dist is None:
        return Verdict(claim, None, "missing")
    status = judge(claim, dist, claim.holds)
    robust = None
    if claim.holds.approx is not None:
        robust = tuple(judge(claim, dist, claim.holds.scaled(f)) for f in (0.5, 2.0))
    return Verdict(claim, dist, status, robust)


def judge_all(results: Path, official_commit: str) -> tuple[list[Verdict], list[Verdict] | None]:
    """Every claim judged on ``results`` and, where ``results/official/<official_commit>/`` exists, on
    the official code's runs (same order; None without them)."""
    claims = load_claims()
    verdicts = [evaluate(c, results) for c in claims]
    official_root = Path(results) / "official" / official_commit
    official = [evaluate(c, official_root) for c in claims] if official_root.is_dir() else None
    return verdicts, official


def deviation_class(ours: Verdict, official: Verdict | None) -> str:
    """For a deviation of ours, whose it is:

    - *paper only*: the official code misses the paper on the same side as ours (below, above, or
      never reaching the milestone), on at least three official seeds;
    - *unsettled*: the same, but on fewer than three official seeds;
    - *ours only*: the official code holds, or misses on another side (ours reverses an order that
      the official code keeps, say);
    - *not checkable*: no official run answers the claim."""
    if ours.status != "deviates":
        return ""
    if official is None or official.status == "missing" or official.dist is None:
        return "not checkable"
    if official.status == "holds":
        return "ours only"
    cat = ours.claim.categorical
    if ours.dist.side(ours.claim.holds, cat) != official.dist.side(ours.claim.holds, cat):
        return "ours only"
    return "paper only" if official.dist.n >= MIN_OFFICIAL_SEEDS else "unsettled"


def _counts(verdicts: list[Verdict]) -> dict[str, int]:
    return {s: sum(v.status == s for v in verdicts) for s in VERDICTS}


def summary_line(verdicts: list[Verdict], official: list[Verdict] | None = None) -> str:
    c = _counts(verdicts)
    line = f"{len(verdicts)} claims: {c['holds']} hold"
    if c["within seed spread"]:
        line += f", {c['within seed spread']} within seed spread"
    line += f", {c['deviates']} deviate"
    if c["missing"]:
        line += f", {c['missing']} missing"
    if official is not None:
        o = _counts(official)
        checked = len(official) - o["missing"]
        line += (
            f"; official code on {checked}: {o['holds']} hold, {o['within seed spread']} within seed spread,"
            f" {o['deviates']} deviate"
        )
        classes = [deviation_class(v, w) for v, w in zip(verdicts, official, strict=True)]
        line += "; our deviations: " + ", ".join(f"{classes.count(k)} {k}" for k in CLASSES)
    return line


HEADER = f"""\
# Paper claims against this repository's results

Generated by `scripts/claims.py` from `results/`; do not edit by hand. Each value is the mean
over independent replicates (split and initialization), with the 95 % bootstrap interval of the
mean for n ≥ 5, the min–max range and n; a categorical value (the best of a sweep) is the mode
with its count and the values seen.

**Tolerance, one rule.** A bound the paper states ("≥ 95 %", "> 0", "< 8") is used as given. A
value or range the paper gives as "≈" (read off a figure) gets one slack on each side, unless
the paper states the side: 10 points for accuracies and other percentages (so "≈ 100 %" is
≥ 90 % everywhere, "≈ 0 %" ≤ 10 %), 20 % of the value for epochs, and the slack written in the
row for other quantities. *½× / 2× slack* gives the verdict with the slack halved and doubled.

**Verdicts.** *holds*: the mean is inside the band (every replicate reached the milestone);
*within seed spread*: the mean is not, but the 95 % bootstrap interval of the mean meets the
band; *deviates*: neither; *missing*: no replicate has the runs. A categorical claim holds when
most replicates are inside, deviates when most are outside, and is within seed spread on a tie. *In band*: how many replicates
are inside the band.

**Classes** of a deviation of ours against the authors' code, run unmodified: *paper only*: the
official value misses the paper on the same side as ours (below, above, or never reaching the
milestone), on at least {MIN_OFFICIAL_SEEDS} official seeds; *unsettled*: the same on fewer than {MIN_OFFICIAL_SEEDS} official seeds;
*ours only*: the official code holds, or misses on another side; *not checkable*: no official
run answers the claim.

Onsets are the first logged epoch of two in a row past the threshold (`reproduction.results.onset`);
a value "at epoch E" is read at each seed's logged epoch nearest E, in both codes
(`reproduction.results.nearest_rows`). A run that stopped early (the official code keeps no
checkpoints) answers the onsets it reached and the values at epochs it passed; claims on its end
stay missing, except where the claim is the largest value over runs: the runs that finished then
give a lower bound ("≥"), which decides the verdict when every larger value gets the same one.
"""


def report(
    verdicts: list[Verdict], official: list[Verdict] | None = None, commit: str = "", warning: str | None = None
) -> str:
    """The Markdown report: one row per claim (ours, and the official code's when given), then the
    summary line, then ``warning`` (e.g. :func:`reproduction.results.damage_warning`) where given."""
    head = "| Figure | Claim | Paper | Ours | Tolerance | Verdict | In band | ½× / 2× slack |"
    rule = "| --- | --- | --- | --- | --- | --- | --- | --- |"
    if official is not None:
        head += f" Official code {commit} | Official verdict | Class |"
        rule += " --- | --- | --- |"
    lines = [HEADER, head, rule]
    for i, v in enumerate(verdicts):
        c = v.claim
        row = f"| {c.figure} | {c.claim} | {c.paper} | {v.ours} | {c.tolerance} | {v.status} | {v.in_band} |"
        row += f" {v.robustness} |"
        if official is not None:
            o = official[i]
            row += f" {o.ours} | {o.status} | {deviation_class(v, o)} |"
        lines.append(row)
    return "\n".join([*lines, "", summary_line(verdicts, official), *(["", warning] if warning else []), ""])


# Checks: a row's ``check`` names one ({at_least: 95}, {approx: [96, 96, 10]}) and gives its arguments.
@dataclass(frozen=True)
class Check:
    """The values a claim accepts: the interval from ``lo`` to ``hi`` (``hi`` itself left out when
    ``open_hi``). Being an interval, it also says what a lower bound on a value decides (:meth:`above`).
    ``approx`` (the paper's value or range and the slack around it, see :func:`approx`) is set where
    the band is the paper's value widened by one slack, so the slack can be varied (:meth:`scaled`)."""

    lo: float = -math.inf
    hi: float = math.inf
    open_hi: bool = False
    approx: tuple[float, float, float, bool] | None = None  # (lo, hi, slack, relative)

    def __call__(self, x: float) -> bool:
        return self.lo <= x and (x < self.hi if self.open_hi else x <= self.hi)

    def above(self, x: float) -> bool | None:
        """Whether every value ≥ ``x`` is accepted (True), none is (False), or that depends (None)."""
        if self(x):
            return True if self.hi == math.inf else None
        return False if x >= self.lo else None

    def side(self, x: float) -> str:
        """Where ``x`` lies against the band: "below", "inside" or "above"."""
        if x < self.lo:
            return "below"
        return "inside" if self(x) else "above"

    def scaled(self, factor: float) -> Check:
        """The same approximate check with its slack times ``factor`` (only for :func:`approx`)."""
        lo, hi, slack, relative = self.approx
        return (approx_rel if relative else approx)(lo, hi, slack * factor)


def at_least(bound: float) -> Check:
    """bound ≤ x: a bound the paper states, used as given."""
    return Check(lo=bound)


def at_most(bound: float) -> Check:
    """x ≤ bound: a bound the paper states, used as given."""
    return Check(hi=bound)


def within(target: float, tol: float) -> Check:
    """|x − target| ≤ tol."""
    return Check(target - tol, target + tol)


def between(lo: float, hi: float) -> Check:
    """lo ≤ x ≤ hi."""
    return Check(lo, hi)


def in_range(lo: float, hi: float) -> Check:
    """lo ≤ x < hi (as Python's range)."""
    return Check(lo, hi, open_hi=True)


def approx(lo: float, hi: float, slack: float) -> Check:
    """ "≈ lo–hi" (lo = hi for one value) read off a figure: lo − slack ≤ x ≤ hi + slack, the slack in
    the value's unit (10 points for accuracies)."""
    return Check(lo - slack, hi + slack, approx=(lo, hi, slack, False))


def approx_rel(lo: float, hi: float, fraction: float) -> Check:
    """ "≈ lo–hi" for epochs: lo · (1 − fraction) ≤ x ≤ hi · (1 + fraction)."""
    return Check(lo * (1 - fraction), hi * (1 + fraction), approx=(lo, hi, fraction, True))


CHECKS = {f.__name__: f for f in (at_least, at_most, within, between, in_range, approx, approx_rel)}

FIELDS = ("figure", "claim", "paper", "measure", "args", "check", "tolerance", "fmt", "key", "categorical")
OPTIONAL = ("args", "fmt", "key", "categorical")
TEXT = ("figure", "claim", "paper", "tolerance", "fmt", "key")


class ClaimsTableError(ValueError):
    """A claims table that cannot be read, or a row that cannot become a claim; the message is one
    line naming the file, the row and what is wrong."""


def load_claims(path: Path | None = None) -> list[Claim]:
    """The claims of every experiment manifest (``reproduction/experiments/``), in the manifests'
    order, or those of one file at ``path``: a manifest, or a plain list of rows. In a manifest a
    row's ``figure`` defaults to the manifest's and ``paper`` to "—" (an experiment of one's own is
    checked against its own expectations)."""
    from reproduction.manifest import ManifestError, experiments, load

    try:
        if path is None:
            manifests = list(experiments().values())
        else:
            rows = _read_rows(Path(path))
            if isinstance(rows, list):
                return _claims([(row, f"{Path(path).name} row {i}") for i, row in enumerate(rows, 1)])
            manifests = [load(Path(path))]
    except ManifestError as e:
        raise ClaimsTableError(str(e)) from None
    located = []
    for exp in manifests:
        for i, row in enumerate(exp.claims, 1):
            if isinstance(row, dict):
                row = {"figure": exp.figure, "paper": "—", **row}
            located.append((row, f"{exp.path.name} claims row {i}"))
    return _claims(located)


def _read_rows(path: Path) -> object:
    try:
        rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ClaimsTableError(f"{path.name}: not valid YAML{where} ({getattr(e, 'problem', e)})") from None
    if not isinstance(rows, list | dict):
        raise ClaimsTableError(f"{path.name}: expected a list of rows, one per claim")
    return rows


def _claims(located: list[tuple[object, str]]) -> list[Claim]:
    """The claims of ``(row, where)`` pairs; a key used twice is an error naming both rows."""
    claims = [claim_from_row(row, where) for row, where in located]
    seen: dict[str, str] = {}
    for c, (_, where) in zip(claims, located, strict=True):
        if c.key in seen:
            other = seen[c.key]
            same_file = other.rpartition(" row ")[0] == where.rpartition(" row ")[0]
            raise ClaimsTableError(
                f"{where}: key {c.key!r} is already {'row ' + other.rpartition(' row ')[2] if same_file else other}'s"
            )
        if c.key:
            seen[c.key] = where
    return claims


def claim_from_row(row: object, where: str) -> Claim:
    """One row of the table as a :class:`Claim`; ``where`` (e.g. ``claims.yaml row 3``) starts any error."""
    if not isinstance(row, dict):
        raise ClaimsTableError(f"{where}: expected a mapping with the fields {', '.join(FIELDS)}")
    unknown = [k for k in row if k not in FIELDS]
    if unknown:
        raise ClaimsTableError(f"{where}: unknown field {unknown[0]!r}; choose from: {', '.join(FIELDS)}")
    missing = [k for k in FIELDS if k not in row and k not in OPTIONAL]
    if missing:
        raise ClaimsTableError(f"{where}: missing field{'s' * (len(missing) > 1)} {', '.join(missing)}")
    for key in TEXT:
        if key in row and not isinstance(row[key], str):
            raise ClaimsTableError(f"{where}: {key} must be text (quote it), not {row[key]!r}")
    fmt = row.get("fmt", "{:.3g}")
    try:
        fmt.format(1.0)
    except (ValueError, IndexError, KeyError) as e:
        raise ClaimsTableError(f"{where}: fmt {fmt!r} cannot print a number ({e})") from None
    measure = build(MEASURES, "measure", row["measure"], row.get("args", []), where)
    check = row["check"]
    if not (isinstance(check, dict) and len(check) == 1):
        raise ClaimsTableError(f"{where}: check must be one name and its arguments, e.g. {{at_least: 95}}")
    [(name, bounds)] = check.items()
    bounds = bounds if isinstance(bounds, list) else [bounds]
    if not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds):
        raise ClaimsTableError(f"{where}: check {name!r} takes numbers, not {bounds!r}")
    holds = build(CHECKS, "check", name, bounds, where)
    categorical = row.get("categorical", False)
    if not isinstance(categorical, bool):
        raise ClaimsTableError(f"{where}: categorical must be true or false, not {categorical!r}")
    if str(row["paper"]).lstrip().startswith("≈") and holds.approx is None:
        raise ClaimsTableError(
            f"{where}: the paper's value {row['paper']!r} is approximate: check it with approx or approx_rel"
        )
    return Claim(
        row["figure"],
        row["claim"],
        row["paper"],
        measure,
        holds,
        row["tolerance"],
        fmt,
        row.get("key", ""),
        categorical,
    )


def build(registry: Mapping[str, Callable] | Registry, kind: str, name: object, args: object, where: str) -> Callable:
    """``registry[name]`` called with ``args`` (a list: positional; a mapping: by name)."""
    if not isinstance(name, str) or name not in registry:
        raise ClaimsTableError(f"{where}: unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}")
    if not isinstance(args, list | dict):
        raise ClaimsTableError(f"{where}: args of {kind} {name!r} must be a list or a mapping, not {args!r}")
    positional, named = (args, {}) if isinstance(args, list) else ([], args)
    make = registry[name]
    signature = inspect.signature(make)
    try:
        signature.bind(*positional, **named)
        return make(*positional, **named)
    except (TypeError, ValueError) as e:
        params = ", ".join(str(p.replace(annotation=p.empty)) for p in signature.parameters.values())
        raise ClaimsTableError(f"{where}: {kind} {name}({params}): {e}") from None
