"""A tuned comparison of methods, from a manifest's ``study`` section: tune each method on a few
seeds, then score its best setting on fresh ones.

Protocol. Each method is tuned over lr × its own parameter (the product of ``lrs`` and
``param.values``, plus the settings ``beyond`` the grid and those its ``edge`` rule adds) on the
``tuning_seeds``; its *best
setting* is the one with the most tuning seeds reaching 99 % test accuracy, then the lowest
Kaplan–Meier median epochs to 99 %, then the highest median best test accuracy. That setting then
runs on the ``fresh_seeds``, disjoint from the tuning seeds, and only those runs enter the report,
so no method is scored on the seeds that chose it (the winner's curse). A method with ``after``
takes one setting from another method's best (Grokfast with AdamW's best decay), so it is tuned
after that method.

The ``study`` section (``reproduction/experiments/<name>.yaml``):

``runs``           where the runs go: ``<runs>/<arch>/<method>_lr<lr>[_<tag><value>]_s<seed>/``
``tuning_seeds``   seeds of the tuning grid (each sets the split and the init: ``seed`` = ``dataset.seed``)
``fresh_seeds``    seeds of each best setting's report runs, disjoint from ``tuning_seeds``
``prior``          (optional) a committed ``runs.csv`` whose share of the budget trained prices ``--plan``
``lrs``            arch -> the lrs every method is tuned over
``architectures``  arch -> ``{experiment: <conf/experiment file>, label, ms_per_epoch}``; the file sets the
                   model, task, budget (``epochs``) and ``stop_when``
``methods``        name -> ``{label, overrides, param: {key, tag, values}, beyond: {arch: [{lr, values}]},
                   edge: {along, steps, per}, after: {method, key, tag}, reuse: "<path template>",
                   baseline: <name in prior>, cost, short, note}``

``protocol``       ``fresh`` (default): the best setting is scored on ``fresh_seeds``; ``grid``: every setting runs
                   on the ``tuning_seeds`` and the best is scored on them (no fresh seeds; the baselines study,
                   reported by :mod:`reproduction.study_grid`)
``run_name``       (optional) the run folder's name before ``_s<seed>``, a template of ``{method}``, ``{lr}``,
                   ``{value}`` (the method's parameter, 0.0 where it has none) and ``{fixed}``
``min_replicates`` (``grid``) a setting with fewer finished seeds is not ranked (default: every seed)
``extend``         (``grid``) arch -> the budget ``extend`` gives the censored seeds of a best setting

A method's ``edge`` rule tunes past the grid's end while the best setting sits there: once every
tuning run finished and the best setting has the largest ``lr`` of the grid (``along: lr``) or the
largest value of the method's parameter at its lr (``along: value``), the next ``per`` (default 1)
of ``steps`` (one list, or a list per architecture) past it join the grid (a new lr with every value
of the parameter; a new value at the best lr), and so on until the best lies inside or ``steps``
run out; a step whose settings training refuses (:func:`refusal`: AdamW's lr × decay ≥ 1) is
skipped. The settings it adds are derived from the finished runs, never written down; ``beyond``
lists settings added by hand (with the reason beside them).

A method's ``short`` label (optional) names it where space is tight (a heat map's rows); its
``note`` (optional) says why its values are these (its paper's setting), beside them in the docs'
methods table (:mod:`reproduction.study_methods`).

``reuse`` names where the same run (same config and seed) may already be finished, e.g. in another
study's committed folder (``{arch}``, ``{lr}``, ``{value}``, ``{seed}``); such a run is read, never
rerun or changed. :func:`plan` lists every run, :func:`price` prices the unfinished ones, :func:`run`
trains them (as ``python train.py -m`` multiruns over seeds, which resume an interrupted run from its
checkpoint) and :func:`report` writes the table and the figure from whatever runs exist.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import OmegaConf

from reproduction.censored import censored_summary, km_median
from reproduction.manifest import ManifestError, experiment

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = (95, 99)
PROTOCOLS = ("fresh", "grid")
FINISHED = ("completed", "diverged")  # an interrupted run is resumed, not read


@dataclass(frozen=True)
class Arch:
    name: str
    experiment: str  # conf/experiment/<experiment>.yaml
    label: str
    budget: int  # epochs: a run that does not hold 99 % test accuracy is censored here
    ms_per_epoch: float


@dataclass(frozen=True)
class Edge:
    """Tune past the grid's end while the best setting sits there (the module's docstring)."""

    along: str  # "lr" or "value" (the method's parameter)
    steps: dict[str, tuple[float, ...]]  # arch -> the settings past the grid's end, in order
    per: int = 1  # how many of them each step adds


EDGE_AXES = ("lr", "value")


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    overrides: tuple[str, ...]
    key: str | None = None  # the method's own parameter (None: lr only)
    tag: str = ""
    values: dict[str, tuple[float, ...]] = field(default_factory=dict)  # arch -> values
    beyond: dict[str, tuple[tuple[float, tuple[float, ...] | None], ...]] = field(default_factory=dict)
    after: tuple[str, str, str] | None = None  # (method, key, tag): a setting taken from that method's best
    edge: Edge | None = None
    reuse: str | None = None
    baseline: str | None = None
    cost: float = 1.0  # × the architecture's ms_per_epoch
    short: str = ""  # a short label (default: the label)
    note: str = ""  # why these values (its paper's setting), shown beside them

    @property
    def tuned(self) -> bool:
        """Whether its parameter takes more than one value somewhere (else only its lr is tuned)."""
        return self.key is not None and any(len(v) > 1 for v in self.values.values())


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    runs: Path
    tuning_seeds: tuple[int, ...]
    fresh_seeds: tuple[int, ...]
    lrs: dict[str, tuple[float, ...]]
    archs: dict[str, Arch]
    methods: dict[str, Method]
    prior: Path | None = None
    protocol: str = "fresh"  # "fresh": best settings scored on fresh seeds; "grid": on the tuning seeds
    run_name: str | None = None  # template of a run's folder name (before _s<seed>)
    min_replicates: int | None = None  # grid: finished seeds a ranked setting needs (default: all)
    extend: dict[str, int] = field(default_factory=dict)  # grid: arch -> the budget of `extend`


@dataclass(frozen=True)
class Setting:
    lr: float
    value: float | None = None  # the method's own parameter
    fixed: float | None = None  # the setting taken from another method's best (``after``)

    def name(self, method: Method, template: str | None = None) -> str:
        if template:
            value = float(self.value) if self.value is not None else 0.0
            return template.format(method=method.name, lr=self.lr, value=value, fixed=self.fixed)
        parts = [method.name, f"lr{self.lr:g}"]
        if self.fixed is not None:
            parts.append(f"{method.after[2]}{self.fixed:g}")
        if self.value is not None:
            parts.append(f"{method.tag}{self.value:g}")
        return "_".join(parts)

    def text(self, method: Method) -> str:
        """The setting as the report shows it: ``lr 0.01, wd 1``."""
        parts = [f"lr {self.lr:g}"]
        if self.fixed is not None:
            parts.append(f"{method.after[2]} {self.fixed:g}")
        if self.value is not None:
            parts.append(f"{method.tag} {self.value:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class PlannedRun:
    arch: str
    method: str
    setting: Setting
    seed: int
    phase: str  # "tuning" or "fresh"
    path: Path  # where it is (a reused finished run) or goes


# --- reading the manifest -------------------------------------------------------------------------


def _fail(path: Path, where: str, message: str) -> ManifestError:
    return ManifestError(f"{path.name}: {'.'.join(['study', where]) if where else 'study'}: {message}")


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _numbers(value: Any, path: Path, where: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, int | float) for v in value):
        raise _fail(path, where, f"must be a non-empty list of numbers, not {value!r}")
    return tuple(float(v) for v in value)


def _seeds(value: Any, path: Path, where: str) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise _fail(path, where, f"must be a non-empty list of whole numbers, not {value!r}")
    return tuple(value)


def _keys(value: Any, path: Path, where: str, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise _fail(path, where, f"must be a mapping with the fields {', '.join(keys)}, not {value!r}")
    for k in value:
        if k not in keys:
            raise _fail(path, _at(where, k), f"unknown field; choose from: {', '.join(keys)}")
    for k in required:
        if k not in value:
            raise _fail(path, _at(where, k), "missing")
    return value


def _edge(spec: Any, key: str | None, archs: tuple[str, ...], path: Path, at: str) -> Edge | None:
    if spec is None:
        return None
    e = _keys(spec, path, at, ("along", "steps", "per"), ("along", "steps"))
    if e["along"] not in EDGE_AXES:
        raise _fail(path, f"{at}.along", f"unknown axis {e['along']!r}; choose from: {', '.join(EDGE_AXES)}")
    if e["along"] == "value" and key is None:
        raise _fail(path, f"{at}.along", "value: the method has no param to tune past its grid")
    per = e.get("per", 1)
    if not (isinstance(per, int) and not isinstance(per, bool) and per >= 1):
        raise _fail(path, f"{at}.per", f"must be a whole number of at least 1, not {per!r}")
    steps = e["steps"]
    if isinstance(steps, dict):
        for a in steps:
            if a not in archs:
                raise _fail(path, f"{at}.steps.{a}", f"not an architecture; choose from: {', '.join(archs)}")
        return Edge(e["along"], {a: _numbers(v, path, f"{at}.steps.{a}") for a, v in steps.items()}, per)
    return Edge(e["along"], {a: _numbers(steps, path, f"{at}.steps") for a in archs}, per)


def budget_of(experiment_file: str) -> int:
    """The ``epochs`` of ``conf/experiment/<experiment_file>.yaml``."""
    conf = ROOT / "conf" / "experiment" / f"{experiment_file}.yaml"
    return int(yaml.safe_load(conf.read_text())["epochs"])


def load(name: str) -> Study:
    """The study of the manifest ``name``; a bad field is one line naming the file and the field."""
    exp = experiment(name)
    path = exp.path
    if exp.study is None:
        raise ManifestError(f"{path.name}: has no study section (python scripts/study.py reads only those)")
    top = ("runs", "tuning_seeds", "fresh_seeds", "prior", "lrs", "architectures", "methods", "protocol")
    top += ("run_name", "min_replicates", "extend")
    s = _keys(exp.study, path, "", top, ("runs", "tuning_seeds", "lrs", "architectures", "methods"))
    protocol = s.get("protocol", "fresh")
    if protocol not in PROTOCOLS:
        raise _fail(path, "protocol", f"unknown protocol {protocol!r}; choose from: {', '.join(PROTOCOLS)}")
    tuning = _seeds(s["tuning_seeds"], path, "tuning_seeds")
    if protocol == "grid":
        if s.get("fresh_seeds"):
            raise _fail(path, "fresh_seeds", "a grid study scores its best settings on the tuning seeds; leave it out")
        fresh: tuple[int, ...] = ()
    else:
        if "fresh_seeds" not in s:
            raise _fail(path, "fresh_seeds", "missing (protocol fresh scores each best setting on fresh seeds)")
        fresh = _seeds(s["fresh_seeds"], path, "fresh_seeds")
    if shared := sorted(set(tuning) & set(fresh)):
        raise _fail(path, "fresh_seeds", f"seeds {shared} are also tuning seeds; the report needs fresh ones")
    min_replicates = s.get("min_replicates")
    if min_replicates is not None and not (isinstance(min_replicates, int) and 1 <= min_replicates <= len(tuning)):
        raise _fail(path, "min_replicates", f"must be a whole number from 1 to {len(tuning)}, not {min_replicates!r}")
    archs = {}
    for a, spec in _keys(s["architectures"], path, "architectures", tuple(s["architectures"] or ())).items():
        at = f"architectures.{a}"
        spec = _keys(spec, path, at, ("experiment", "label", "ms_per_epoch"), ("experiment", "ms_per_epoch"))
        if not (ROOT / "conf" / "experiment" / f"{spec['experiment']}.yaml").is_file():
            raise _fail(path, f"{at}.experiment", f"conf/experiment/{spec['experiment']}.yaml does not exist")
        archs[a] = Arch(
            a, spec["experiment"], spec.get("label", a), budget_of(spec["experiment"]), float(spec["ms_per_epoch"])
        )
    lrs = {}
    for a in archs:
        if a not in (s["lrs"] or {}):
            raise _fail(path, f"lrs.{a}", "missing (every architecture needs its lrs)")
        lrs[a] = _numbers(s["lrs"][a], path, f"lrs.{a}")
    method_keys = (
        "label",
        "overrides",
        "param",
        "beyond",
        "edge",
        "after",
        "reuse",
        "baseline",
        "cost",
        "short",
        "note",
    )
    methods: dict[str, Method] = {}
    for m, spec in _keys(s["methods"], path, "methods", tuple(s["methods"] or ())).items():
        at = f"methods.{m}"
        spec = _keys(spec, path, at, method_keys, ("label", "overrides"))
        key, tag, values = None, "", {}
        if "param" in spec:
            p = _keys(spec["param"], path, f"{at}.param", ("key", "tag", "values"), ("key", "tag", "values"))
            key, tag = p["key"], p["tag"]
            v = p["values"]
            for a in archs:
                values[a] = _numbers(v.get(a) if isinstance(v, dict) else v, path, f"{at}.param.values")
        beyond = {}
        for a, entries in (spec.get("beyond") or {}).items():
            if a not in archs:
                raise _fail(path, f"{at}.beyond.{a}", f"not an architecture; choose from: {', '.join(archs)}")
            beyond[a] = tuple(
                (float(e["lr"]), _numbers(e["values"], path, f"{at}.beyond.{a}") if "values" in e else None)
                for e in entries
            )
        edge = _edge(spec.get("edge"), key, tuple(archs), path, f"{at}.edge")
        after = None
        if "after" in spec:
            f = _keys(spec["after"], path, f"{at}.after", ("method", "key", "tag"), ("method", "key", "tag"))
            if f["method"] not in methods:
                raise _fail(path, f"{at}.after.method", f"{f['method']!r} must be a method listed before {m!r}")
            after = (f["method"], f["key"], f["tag"])
        methods[m] = Method(
            m, spec["label"], tuple(spec["overrides"]), key, tag, values, beyond, after, edge,
            spec.get("reuse"), spec.get("baseline"), float(spec.get("cost", 1.0)), spec.get("short", ""),
            str(spec.get("note", "")),
        )  # fmt: skip
    prior = ROOT / s["prior"] if s.get("prior") else None
    extend = {}
    for a, epochs in _keys(s.get("extend") or {}, path, "extend", tuple(archs)).items():
        if not isinstance(epochs, int) or epochs <= archs[a].budget:
            raise _fail(path, f"extend.{a}", f"must be a whole number of epochs above the budget {archs[a].budget}")
        extend[a] = epochs
    run_name = s.get("run_name")
    if run_name is not None:
        try:
            run_name.format(method="m", lr=0.1, value=0.0, fixed=None)
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            raise _fail(
                path, "run_name", f"{run_name!r} is not a template of {{method}}, {{lr}}, {{value}}, {{fixed}} ({e})"
            ) from None
    return Study(
        name, path, ROOT / s["runs"], tuning, fresh, lrs, archs, methods, prior,
        protocol, run_name, min_replicates, extend,
    )  # fmt: skip


def choose(text: str | None, choices: list[str], what: str) -> list[str]:
    """The comma-separated names of ``text`` among ``choices`` (all of them without ``text``), in
    the manifest's order; an unknown one is a one-line :class:`ManifestError` (``what``: the option)."""
    picked = text.split(",") if text else choices
    for p in picked:
        if p not in choices:
            raise ManifestError(f"--{what}: unknown {what[:-1]} {p!r}; choose from: {', '.join(choices)}")
    return [c for c in choices if c in picked]


def restrict(
    study: Study, lrs: list[float] | None = None, values: list[float] | None = None, seeds: list[int] | None = None
) -> Study:
    """The study on a sub-grid: these lrs on every architecture, these values of every tuned
    parameter (a method with one value keeps it), these tuning seeds. A grid named this way has no
    settings beyond it (by hand or by its ``edge`` rule)."""
    changes: dict[str, Any] = {}
    if lrs or values:
        methods = {}
        for m, method in study.methods.items():
            vals = {a: tuple(values) for a in method.values} if values and method.tuned else method.values
            methods[m] = replace(method, values=vals, beyond={}, edge=None)
        changes["methods"] = methods
    if lrs:
        changes["lrs"] = {a: tuple(lrs) for a in study.lrs}
    if seeds:
        changes["tuning_seeds"] = tuple(seeds)
    return replace(study, **changes)


# --- the runs -------------------------------------------------------------------------------------


def grid(study: Study, arch: str, method: Method, fixed: float | None = None) -> list[Setting]:
    """The method's tuning settings on ``arch``: lrs × its values, then the settings beyond the grid
    (an entry without ``values`` takes the method's)."""
    values = method.values.get(arch, (None,)) if method.key else (None,)
    out = [Setting(lr, v, fixed) for lr in study.lrs[arch] for v in values]
    for lr, vs in method.beyond.get(arch, ()):
        out += [Setting(lr, v, fixed) for v in ((vs if vs is not None else values) if method.key else (None,))]
    return out


def past_edge(
    method: Method, arch: str, settings: list[Setting], best: Setting, allowed: Callable[[Setting], bool] | None = None
) -> list[Setting]:
    """The settings the method's ``edge`` rule adds to ``settings`` (every one finished) whose best
    is ``best``: the next steps past the grid's end where ``best`` sits at it, else none. A step's
    settings that training would refuse (``allowed`` false, :func:`refusal`) are left out, and a step
    left with none is skipped."""
    edge = method.edge
    if edge is None:
        return []
    steps = edge.steps.get(arch, ())
    if edge.along == "lr":
        if best.lr < max(s.lr for s in settings):
            return []
        values = method.values.get(arch, (None,)) if method.key else (None,)
        ahead = [[Setting(lr, v, best.fixed) for v in values] for lr in steps if lr > best.lr]
    else:
        if best.value < max(s.value for s in settings if s.lr == best.lr):
            return []
        ahead = [[Setting(best.lr, v, best.fixed)] for v in steps if v > best.value]
    kept = (k for step in ahead if (k := [s for s in step if allowed is None or allowed(s)]))
    return [s for step in itertools.islice(kept, edge.per) for s in step if s not in settings]


def run_path(study: Study, arch: str, method: Method, setting: Setting, seed: int, runs: Path | None = None) -> Path:
    """Where the run is: its ``reuse`` folder if that holds a finished run, else the study's folder."""
    if method.reuse:
        value = setting.value if setting.value is not None else 0.0
        reused = ROOT / method.reuse.format(arch=arch, lr=setting.lr, value=float(value), seed=seed)
        if finished(reused) is not None:
            return reused
    return (runs or study.runs) / arch / f"{setting.name(method, study.run_name)}_s{seed}"


def spent(study: Study, arch: str | None = None) -> tuple[int, float]:
    """(finished runs, seconds of training) in the study's own run folder, on every architecture or
    on ``arch``: the sum of the runs' ``wall_time_s`` (one thread each). Runs it reads from another
    study's folder (``reuse``) are that study's."""
    summaries = [finished(d) for a in ([arch] if arch else study.archs) for d in sorted((study.runs / a).glob("*"))]
    done = [s for s in summaries if s is not None]
    return len(done), sum(s.get("wall_time_s", 0.0) for s in done)


def finished(run_dir: Path, budget: int | None = None) -> dict | None:
    """The run's summary.json where it finished (completed or diverged, at ``budget`` epochs or more), else None."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if summary.get("status") not in FINISHED or (budget is not None and summary.get("epochs", 0) < budget):
        return None
    return summary


def outcome(summary: dict, budget: int) -> dict:
    """One run's milestones, censored at the study's ``budget`` (a run trained past it, e.g. extended,
    counts only what it reached within it)."""
    [s] = summary["per_seed"].values()
    row = {"status": summary["status"], "epoch": min(summary["epoch"], budget), "budget": budget}
    for t in THRESHOLDS:
        e = s.get(f"epoch_test_acc_{t}")
        row[f"epoch_{t}"] = e if e is not None and e <= budget else None
    row["best_test_acc"] = s.get("best_test_acc")
    row["wall_time_s"] = summary.get("wall_time_s")
    return row


class Runs:
    """The study's runs as they stand: which are finished, each method's best setting."""

    def __init__(self, study: Study, runs: Path | None = None, budgets: dict[str, int] | None = None):
        self.study, self.root = study, runs or study.runs
        self.budget = {a: (budgets or {}).get(a, arch.budget) for a, arch in study.archs.items()}
        self._best: dict[tuple[str, str], Setting | None] = {}
        self._grid: dict[tuple[str, str], list[Setting] | None] = {}

    def forget(self, arch: str, method: str) -> None:
        """Drop what was derived from the runs of ``method`` (after training some of them)."""
        self._best.pop((arch, method), None)
        self._grid.pop((arch, method), None)

    def path(self, arch: str, method: Method, setting: Setting, seed: int) -> Path:
        return run_path(self.study, arch, method, setting, seed, self.root)

    def result(self, arch: str, method: Method, setting: Setting, seed: int) -> dict | None:
        summary = finished(self.path(arch, method, setting, seed), self.budget[arch])
        return None if summary is None else outcome(summary, self.budget[arch])

    def fixed(self, arch: str, method: Method) -> tuple[bool, float | None]:
        """(known, value) of the setting a method takes from another's best (``after``)."""
        if method.after is None:
            return True, None
        best = self.best(arch, self.study.methods[method.after[0]])
        return (False, None) if best is None else (True, best.value)

    def grid(self, arch: str, method: Method) -> list[Setting] | None:
        """The method's tuning settings as its finished runs make them: :func:`grid`, then what its
        ``edge`` rule adds; None while the setting it takes from another method (``after``) is unknown."""
        key = (arch, method.name)
        if key not in self._grid:
            known, fixed = self.fixed(arch, method)
            settings = grid(self.study, arch, method, fixed) if known else None
            while settings is not None and method.edge is not None:
                table = self._table(arch, method, settings)
                if len(table) < len(settings):  # the rule waits for every tuning run
                    break
                added = past_edge(method, arch, settings, pick(table), functools.partial(self.trains, arch, method))
                if not added:
                    break
                settings = settings + added
            self._grid[key] = settings
        return self._grid[key]

    def trains(self, arch: str, method: Method, setting: Setting) -> bool:
        """Whether training takes ``setting``'s config (:func:`refusal`)."""
        return refusal(self.study, arch, method, setting) is None

    def tuning(self, arch: str, method: Method) -> list[PlannedRun]:
        return [
            PlannedRun(arch, method.name, s, seed, "tuning", self.path(arch, method, s, seed))
            for s in self.grid(arch, method) or ()
            for seed in self.study.tuning_seeds
        ]

    def tuning_size(self, arch: str, method: Method) -> int:
        """Tuning runs planned: the derived grid's, or the manifest's grid while that is unknown."""
        settings = self.grid(arch, method)
        return len(settings if settings is not None else grid(self.study, arch, method)) * len(self.study.tuning_seeds)

    def settings(self, arch: str, method: Method) -> pd.DataFrame:
        """Every tuning setting with all its seeds finished: Kaplan–Meier medians and shares (no intervals)."""
        return self._table(arch, method, self.grid(arch, method) or [])

    def _table(self, arch: str, method: Method, settings: list[Setting]) -> pd.DataFrame:
        rows = []
        for s in settings:
            results = [self.result(arch, method, s, seed) for seed in self.study.tuning_seeds]
            if any(r is None for r in results):
                continue
            row = {"arch": arch, "method": method.name, "setting": s.text(method), "lr": s.lr, "value": s.value}
            row |= {"fixed": s.fixed, "seeds": len(results), "_setting": s}
            for t in THRESHOLDS:
                times = [r[f"epoch_{t}"] for r in results]
                events = [e is not None for e in times]
                median = km_median([e if e is not None else r["budget"] for e, r in zip(times, results)], events)
                row[f"median_{t}"] = median
                row[f"share_{t}"] = sum(events) / len(events)
            row["median_best_test_acc"] = pd.Series([r["best_test_acc"] for r in results]).median()
            rows.append(row)
        return pd.DataFrame.from_records(rows)

    def best(self, arch: str, method: Method) -> Setting | None:
        """The best tuning setting, once every tuning run of the method finished; else None."""
        key = (arch, method.name)
        if key not in self._best:
            runs = self.tuning(arch, method)
            done = runs and all(self.result(arch, method, r.setting, r.seed) is not None for r in runs)
            self._best[key] = pick(self.settings(arch, method)) if done else None
        return self._best[key]

    def fresh(self, arch: str, method: Method) -> list[PlannedRun]:
        best = self.best(arch, method)
        if best is None:
            return []
        return [
            PlannedRun(arch, method.name, best, seed, "fresh", self.path(arch, method, best, seed))
            for seed in self.study.fresh_seeds
        ]


def ranked(settings: pd.DataFrame, within: tuple[str, ...] = ()) -> pd.DataFrame:
    """``settings`` best first (within each group of the ``within`` columns): the most seeds to 99 %,
    then the lowest median to 99 %, then the furthest median best test accuracy (where no seed
    generalized), then the smallest lr. The one ranking of both study protocols."""
    keys = settings.assign(
        _share=-settings["share_99"],
        _median=settings["median_99"].astype(float).fillna(math.inf),
        _reach=-settings["median_best_test_acc"].fillna(0.0),
    )
    order = keys.sort_values([*within, "_share", "_median", "_reach", "lr"], kind="stable")
    return order.drop(columns=["_share", "_median", "_reach"])


def pick(settings: pd.DataFrame) -> Setting | None:
    """The best of a method's tuning settings (:func:`ranked`), or None where none finished."""
    return None if settings.empty else ranked(settings).iloc[0]["_setting"]


def setting_overrides(method: Method, setting: Setting) -> list[str]:
    """The overrides ``setting`` adds to the method's: its lr, the value taken from another method,
    its own parameter."""
    out = [f"optimizer.lr={setting.lr:g}"]
    if setting.fixed is not None:
        out.append(f"{method.after[1]}={setting.fixed:g}")
    if setting.value is not None:
        out.append(f"{method.key}={setting.value:g}")
    return out


@functools.cache
def _composed(experiment: str, method_overrides: tuple[str, ...]) -> dict[str, Any]:
    """The composed config as plain values (a registry change rebuilds the schema's classes, so no
    config object outlives one)."""
    from grokking.cli import compose

    cfg = compose(["device=cpu", f"experiment={experiment}", *method_overrides])
    return OmegaConf.to_container(cfg, resolve=False)


def refusal(study: Study, arch: str, method: Method, setting: Setting) -> str | None:
    """The one-line error with which training refuses ``setting``'s config (values each in range
    but not together, e.g. AdamW's lr × decay ≥ 1), or None where it would train."""
    from grokking.errors import ConfigError
    from grokking.train import to_config
    from grokking.validation import validate

    cfg = OmegaConf.create(_composed(study.archs[arch].experiment, method.overrides))
    for item in setting_overrides(method, setting):
        key, _, value = item.partition("=")
        OmegaConf.update(cfg, key, yaml.safe_load(value))  # a plain value, as the command line gives it
    try:
        validate(to_config(cfg)[0])
    except ConfigError as err:
        return str(err)
    return None


def overrides(study: Study, arch: str, method: Method, setting: Setting, seeds: list[int], runs: Path) -> list[str]:
    """The ``python train.py -m`` overrides that train ``setting`` on ``seeds``."""
    return [
        f"experiment={study.archs[arch].experiment}",
        *method.overrides,
        *setting_overrides(method, setting),
        f"seed={','.join(str(s) for s in seeds)}",
        f"hydra.sweep.dir={(runs / arch).resolve()}",
        f"hydra.sweep.subdir={setting.name(method, study.run_name)}_s${{seed}}",
    ]


# --- pricing (--plan) -----------------------------------------------------------------------------


def prior_shares(study: Study) -> pd.DataFrame | None:
    """The committed grid's share of its budget trained (stop_when ends generalizing runs early)."""
    if study.prior is None or not study.prior.is_file():
        return None
    t = pd.read_csv(study.prior)
    return t.assign(share=t["epoch"].clip(upper=t["budget"]) / t["budget"])


MIN_RUNS_FOR_SHARE = 4  # a method's own finished runs price its rest from this many on


def share_trained(
    study: Study, prior: pd.DataFrame | None, arch: str, method: Method, done: list[dict] | None = None
) -> tuple[float, str]:
    """(expected share of the budget a run trains, where that number comes from): the method's own
    finished runs of this study (``done``, outcomes) where it has enough of them, else the committed
    grid's runs of the same method, else of all its methods on that architecture."""
    if done and len(done) >= MIN_RUNS_FOR_SHARE:
        return sum(r["epoch"] / r["budget"] for r in done) / len(done), "runs"
    if prior is None:
        return 1.0, "budget"
    here = prior[prior["arch"] == arch]
    own = here[here["method"] == method.baseline] if method.baseline else here.iloc[0:0]
    if not own.empty:
        return float(own["share"].mean()), "own"
    return (float(here["share"].mean()), "grid") if not here.empty else (1.0, "budget")


def price(runs: Runs, archs: list[str], methods: list[str]) -> pd.DataFrame:
    """Per architecture and method: runs planned and finished, ms/epoch and the hours left (upper bound:
    every run to its budget; expected: at the share of the budget its finished runs trained, or the
    committed grid's, :func:`share_trained`)."""
    study, prior = runs.study, prior_shares(runs.study)
    rows = []
    for a in archs:
        arch = study.archs[a]
        for m in methods:
            method = study.methods[m]
            tuning = runs.tuning(a, method)
            n_tuning = len(tuning) or runs.tuning_size(a, method)  # before its `after` method's best is known
            done = [runs.result(a, method, r.setting, r.seed) for r in tuning]
            done_tuning = sum(r is not None for r in done)
            fresh = runs.fresh(a, method)
            done += [runs.result(a, method, r.setting, r.seed) for r in fresh]
            done_fresh = sum(r is not None for r in done) - done_tuning
            todo = n_tuning - done_tuning + len(study.fresh_seeds) - done_fresh
            ms = arch.ms_per_epoch * method.cost
            share, source = share_trained(study, prior, a, method, [r for r in done if r is not None])
            hours = todo * runs.budget[a] * ms / 3.6e6
            rows.append(
                {
                    "arch": a, "method": m, "tuning_runs": n_tuning, "tuning_done": done_tuning,
                    "fresh_runs": len(study.fresh_seeds), "fresh_done": done_fresh, "to_run": todo,
                    "budget": runs.budget[a], "ms_per_epoch": ms, "share": share, "share_from": source,
                    "upper_h": hours, "expected_h": hours * share,
                }
            )  # fmt: skip
    return pd.DataFrame.from_records(rows)


def plan_text(table: pd.DataFrame) -> str:
    lines = [
        f"{'architecture':<12} {'method':<13} {'tuning':>9} {'fresh':>6} {'to run':>6} {'budget':>6} "
        f"{'ms/ep':>6} {'share':>10} {'upper h':>8} {'expected h':>10}"
    ]
    for a, sub in table.groupby("arch", sort=False):
        for _, r in sub.iterrows():
            lines.append(
                f"{a:<12} {r['method']:<13} {r['tuning_done']:>4}/{r['tuning_runs']:<4} "
                f"{r['fresh_done']:>2}/{r['fresh_runs']:<3} {r['to_run']:>6} {r['budget']:>6} {r['ms_per_epoch']:>6.1f} "
                f"{r['share']:>5.2f} {r['share_from']:<4} {r['upper_h']:>8.1f} {r['expected_h']:>10.1f}"
            )
        lines.append(
            f"{a:<12} {'total':<13} {sub['tuning_done'].sum():>4}/{sub['tuning_runs'].sum():<4} "
            f"{sub['fresh_done'].sum():>2}/{sub['fresh_runs'].sum():<3} {sub['to_run'].sum():>6} {'':>6} {'':>6} "
            f"{'':>10} {sub['upper_h'].sum():>8.1f} {sub['expected_h'].sum():>10.1f}"
        )
    lines.append(
        f"all: {table['to_run'].sum()} runs to make, {table['upper_h'].sum():.1f} CPU-hours at most, "
        f"{table['expected_h'].sum():.1f} expected ({table['expected_h'].sum() / 2:.1f} h of wall time at two jobs at once)"
    )
    lines.append(
        "tuning/fresh: finished/planned runs (a method with an edge rule may plan more as its runs finish); "
        "share: expected share of the budget trained (stop_when), from the "
        "method's finished runs here (runs), the committed grid's runs of the same method (own) or of all its "
        "methods on that architecture (grid)"
    )
    return "\n".join(lines) + "\n"


# --- training -------------------------------------------------------------------------------------


def launch(cmd: list[str]) -> int:
    return subprocess.run(cmd, cwd=ROOT).returncode


def run(
    runs: Runs,
    archs: list[str],
    methods: list[str],
    extra: list[str],
    dry_run: bool = False,
    launcher: Callable[[list[str]], int] = launch,
) -> int:
    """Train what is missing, per architecture and method: the tuning grid (again while its ``edge``
    rule adds settings), then (once every tuning run finished) the best setting on the fresh seeds.
    Finished runs are skipped; a cut one resumes."""
    study, failures = runs.study, 0
    for a in archs:
        for m in methods:
            method = study.methods[m]
            for phase in ("tuning",) if study.protocol == "grid" else ("tuning", "fresh"):
                while True:
                    planned = runs.tuning(a, method) if phase == "tuning" else runs.fresh(a, method)
                    if not planned:
                        break
                    codes = _train(runs, a, method, phase, planned, extra, dry_run, launcher)
                    if 130 in codes:
                        return 130
                    failures += sum(c != 0 for c in codes)
                    runs.forget(a, m)  # its tuning may be finished now, or its edge rule add settings
                    if not codes or any(codes) or phase == "fresh":
                        break
                if not planned:
                    why = f"{method.after[0]}'s" if phase == "tuning" else "its"
                    print(f"{a} {m}: {phase} waits ({why} tuning is not finished)", flush=True)
                    break
    return 1 if failures else 0


def _train(
    runs: Runs,
    a: str,
    method: Method,
    phase: str,
    planned: list[PlannedRun],
    extra: list[str],
    dry_run: bool,
    launcher: Callable[[list[str]], int],
) -> list[int]:
    """Train the unfinished ``planned`` runs, one multirun per setting: the launcher's return codes
    (none where nothing was unfinished or ``dry_run``), up to the first interrupted one (130)."""
    todo: dict[Setting, list[int]] = {}
    for r in planned:
        if runs.result(a, method, r.setting, r.seed) is None:
            todo.setdefault(r.setting, []).append(r.seed)
    codes: list[int] = []
    for setting, seeds in todo.items():
        cmd = [sys.executable, str(ROOT / "train.py"), "-m"]
        cmd += overrides(runs.study, a, method, setting, seeds, runs.root) + extra
        print(f"{a} {method.name} {phase}: train.py -m {' '.join(cmd[3:])}", flush=True)
        if dry_run:
            continue
        codes.append(launcher(cmd))
        if codes[-1] == 130:
            break
    return codes


# --- the report -----------------------------------------------------------------------------------


def report_table(runs: Runs, archs: list[str], methods: list[str]) -> pd.DataFrame:
    """One row per architecture × method: the best setting and the censored statistics of its fresh
    seeds (whichever of them finished); a method without fresh runs is "not run"."""
    study, rows = runs.study, []
    for a in archs:
        for m in methods:
            method = study.methods[m]
            best = runs.best(a, method)
            row = {"arch": a, "method": m, "label": method.label, "best": best.text(method) if best else None}
            row["tuning"] = f"{sum(1 for r in runs.tuning(a, method) if runs.result(a, method, r.setting, r.seed))}"
            row["tuning"] += f"/{runs.tuning_size(a, method)}"
            results = [runs.result(a, method, r.setting, r.seed) for r in runs.fresh(a, method)]
            results = [r for r in results if r is not None]
            row["n"] = len(results)
            for t in THRESHOLDS:
                if results:
                    s = censored_summary([r[f"epoch_{t}"] for r in results], [r["budget"] for r in results])
                    row |= {f"median_{t}": s["median"], f"median_{t}_text": s["median_text"]}
                    row |= {f"ci_{t}_low": s["ci_low"], f"ci_{t}_high": s["ci_high"], f"k_{t}": s["n_generalized"]}
                else:
                    row |= {f"median_{t}": None, f"median_{t}_text": "not run", f"ci_{t}_low": None}
                    row |= {f"ci_{t}_high": None, f"k_{t}": None}
            row["budget"] = runs.budget[a]
            rows.append(row)
    return pd.DataFrame.from_records(rows)


def _bound(v: Any) -> str:
    return "∞" if v is None or pd.isna(v) or math.isinf(v) else f"{v:.0f}"


def median_interval(row: Any, t: int) -> str:
    """A report row's median epochs to ``t`` % with its bootstrap 95 % interval: ``350 [280, 420]``."""
    return f"{row[f'median_{t}_text']} [{_bound(row[f'ci_{t}_low'])}, {_bound(row[f'ci_{t}_high'])}]"


def table_markdown(table: pd.DataFrame, study: Study) -> str:
    n = len(study.fresh_seeds)
    lines = [
        f"| architecture | method | best setting (tuning runs finished) | median epochs to 95 % [95 % CI] "
        f"| median epochs to 99 % [95 % CI] | generalized (99 %), of {n} |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        best = r["best"] if isinstance(r["best"], str) else "tuning not finished"
        cells = []
        for t in THRESHOLDS:
            cells.append("not run" if not r["n"] else median_interval(r, t))
        k = (
            "not run"
            if not r["n"]
            else f"{int(r['k_99'])} of {r['n']}" + ("" if r["n"] == n else f" finished (of {n})")
        )
        lines.append(
            f"| {study.archs[r['arch']].label} | {r['label']} | {best} ({r['tuning']}) | {cells[0]} | {cells[1]} | {k} |"
        )
    return "\n".join(lines) + "\n"


def curves(runs: Runs, archs: list[str], methods: list[str], previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Test accuracy over epochs of every fresh run of each best setting (from its metrics.csv, or
    from ``previous`` rows of the same run where that file is gone)."""
    frames = []
    for a in archs:
        for m in methods:
            method = runs.study.methods[m]
            for r in runs.fresh(a, method):
                if runs.result(a, method, r.setting, r.seed) is None:
                    continue
                path = r.path / "metrics.csv"
                if path.is_file():
                    c = pd.read_csv(path, usecols=["epoch", "seed", "test_acc"])
                    frames.append(c[c["seed"] == r.seed].assign(arch=a, method=m, run=r.path.name))
                elif previous is not None and not previous.empty:
                    frames.append(previous[previous["run"] == r.path.name])
    columns = ["arch", "method", "run", "seed", "epoch", "test_acc"]
    return pd.concat(frames)[columns] if frames else pd.DataFrame(columns=columns)


def plot(table: pd.DataFrame, curve_table: pd.DataFrame, study: Study, archs: list[str], path: Path) -> None:
    """Top: median epochs to 99 % with its 95 % interval per method (a method without fresh runs is
    marked "not run"; a median above the budget is drawn at the budget with an arrow). Bottom: test
    accuracy of each best setting, median over its fresh seeds with a min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2, len(archs), figsize=(4.2 * len(archs) + 2.6, 8.5), squeeze=False, sharey="row", layout="constrained"
    )
    colors = {m: f"C{i}" for i, m in enumerate(study.methods)}
    for col, a in enumerate(archs):
        ax, sub = axes[0][col], table[table["arch"] == a].reset_index(drop=True)
        budget = study.archs[a].budget
        for i, r in sub.iterrows():
            y = len(sub) - 1 - i
            if not r["n"]:
                ax.text(0.03, y, "not run", va="center", fontsize=8, color="0.4", transform=ax.get_yaxis_transform())
                continue
            med = r["median_99"] if r["median_99"] is not None and not pd.isna(r["median_99"]) else None
            low = r["ci_99_low"] if math.isfinite(r["ci_99_low"]) else budget  # all censored: at the budget
            high = r["ci_99_high"] if math.isfinite(r["ci_99_high"]) else budget
            x = med if med is not None else budget
            ax.plot([low, high], [y, y], color=colors[r["method"]], lw=2)
            ax.plot([x], [y], "o" if med is not None else ">", color=colors[r["method"]])
            text = f"{r['median_99_text']} ({int(r['k_99'])}/{r['n']})"
            ax.text(x, y - 0.33, text, fontsize=7, ha="right" if med is None else "center", va="center")
        ax.set_yticks(range(len(sub)), list(sub["label"])[::-1], fontsize=8)
        ax.set_ylim(-0.7, len(sub) - 0.4)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # decades only: no overlapping labels
        ax.set_xlim(10, budget * 1.5)
        ax.axvline(budget, color="0.6", ls=":", lw=1)
        ax.set_xlabel("epochs to 99 % test\n(median, bootstrap 95 % interval; ▶ none by the budget)", fontsize=8)
        ax.set_title(f"{study.archs[a].label} (budget {budget})", fontsize=10)
        ax = axes[1][col]
        for m in study.methods:
            c = curve_table[(curve_table["arch"] == a) & (curve_table["method"] == m)]
            if c.empty:
                continue
            wide = c.pivot_table(index="epoch", columns="seed", values="test_acc").ffill()  # stopped runs hold
            label = sub[sub["method"] == m]["best"].iloc[0]
            ax.plot(
                wide.index,
                wide.median(axis=1),
                color=colors[m],
                label=f"{study.methods[m].short or study.methods[m].label} ({label})",
            )
            ax.fill_between(wide.index, wide.min(axis=1), wide.max(axis=1), color=colors[m], alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlim(1, budget)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("epoch")
        ax.set_title("test accuracy of the best settings, fresh seeds\n(median and min–max)", fontsize=9)
        if ax.lines:
            ax.legend(fontsize=6, loc="center left")
        else:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="0.4")
    axes[1][0].set_ylabel("test accuracy")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tuning_table(runs: Runs, archs: list[str], methods: list[str]) -> pd.DataFrame:
    frames = [runs.settings(a, runs.study.methods[m]) for a in archs for m in methods]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames).drop(columns="_setting") if frames else pd.DataFrame()


def report(runs: Runs, archs: list[str], methods: list[str], out: Path, figure: Path) -> str:
    """Write ``table.md`` / ``table.csv`` (fresh seeds of each best setting), ``tuning.csv`` (every
    finished tuning setting) and ``curves.csv`` into ``out``, and the figure; return the table."""
    out.mkdir(parents=True, exist_ok=True)
    table = report_table(runs, archs, methods)
    markdown = table_markdown(table, runs.study)
    (out / "table.md").write_text(markdown)
    table.to_csv(out / "table.csv", index=False)
    tuning_table(runs, archs, methods).to_csv(out / "tuning.csv", index=False)
    previous = pd.read_csv(out / "curves.csv") if (out / "curves.csv").is_file() else None
    curve_table = curves(runs, archs, methods, previous)
    curve_table.to_csv(out / "curves.csv", index=False)
    plot(table, curve_table, runs.study, archs, figure)
    return markdown
