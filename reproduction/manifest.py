"""Experiment manifests: one YAML file per experiment says what runs, how many replicates each run
should have, which of the authors' runs stand for it, what is drawn and what is claimed.

The manifests live in ``reproduction/experiments/<name>.yaml`` (:data:`FOLDERS`); ``<name>`` is the
experiment's folder under ``results/`` (``results/<name>/<run>/``). A manifest holds:

``title``        what the experiment shows, in one line
``order``        where it comes in ``results/CLAIMS.md``, ``--list`` and the figures (a number; default 100)
``figure``       how the claims report names it (default: the experiment's name); a claim row may say otherwise
``replicates``   the target number of replicates of each run (default 1); a run may set its own
``runs``         run name -> Hydra overrides (on top of ``conf/config.yaml``; usually ``experiment=<file>`` first),
                 or -> ``{overrides: [...], replicates: N}``
``grid``         runs as a product (one mapping or a list of them): ``name`` (a template: ``{key}`` is the
                 name of that axis' value), ``overrides`` (shared), ``product`` (key -> values, the first key
                 outermost). A value is a scalar (the override ``key=value``, named by itself) or a mapping
                 ``{value: v, name: s, with: [extra overrides]}`` (each part optional; the extras come after every
                 swept override)
``official``     run -> the official script's flags that stand for it: ``{flags: [...], epochs: N,
                 log_frequency: N, seeds: [...], fixed_only: bool, crashes: bool, gpu: bool, note: "..."}``
                 (``gpu``: too long for CPUs, run by ``scripts/official.py --gpu-runs``, as ``make gpu-batch`` does)
``plot``         ``panels`` (each: ``title``, ``series`` of ``{run, label, color}``, optionally ``y`` (a metrics
                 column, default ``accuracy``: test solid, train dashed), ``log_x``, ``log_y``, ``out`` (the
                 file it goes to, default the experiment's name) and ``options`` for a custom function), and
                 ``function``: ``path/to/file.py`` (its ``main(results, out_dir)``) where the figure needs custom
                 drawing; without it :func:`reproduction.plotting.draw` draws the panels
``postprocess``  ``module:function`` called with ({run: run folder}, experiment folder) once every run is done
``claims``       rows of claims (``reproduction.claims``): ``claim``, ``measure``, ``args``, ``check``,
                 ``tolerance``, and optionally ``paper`` (default "—"), ``figure``, ``fmt``, ``key``, ``categorical``
``study``        a tuned comparison of methods (tuning grid, best setting, fresh seeds; or, with
                 ``protocol: grid``, every setting on the same seeds): read by :mod:`reproduction.study`
                 (``python scripts/study.py <name>``)

:func:`experiments` loads every manifest, in order; a bad manifest raises :class:`ManifestError`
with one line naming the file and the field.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FOLDER = Path(__file__).resolve().parent / "experiments"
FOLDERS: list[Path] = [FOLDER]  # where manifests are looked for (a test adds its own)
DEFAULT_ORDER = 100
NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
TOP = (
    "title", "order", "figure", "replicates", "runs", "grid", "official", "plot", "postprocess", "claims", "study"
)  # fmt: skip


class ManifestError(ValueError):
    """A manifest that cannot be read; the message is one line naming the file and the field."""


@dataclass(frozen=True)
class Run:
    """One run: ``results/<experiment>/<name>/`` is ``python train.py <overrides>``."""

    name: str
    overrides: tuple[str, ...]
    replicates: int = 1  # the target number of replicates, the run itself included

    @property
    def replicated(self) -> bool:
        """Whether the run gets replicates: not one that only varies another run's init seed (it
        sets ``seed=`` or ``seeds=`` itself)."""
        return not any(o.startswith(("seed=", "seeds=")) for o in self.overrides)


@dataclass(frozen=True)
class OfficialRun:
    """One of our runs (``results/<experiment>/<name>``) as flags of the official script.

    Flags use the fixed snapshot's spelling; ``reproduction.official.flags_for`` translates them for
    the release. ``log_frequency`` only sets how often the official logger measures: it evaluates in
    eval mode without gradients and consumes no random numbers, so it does not change the trajectory.
    """

    flags: tuple[str, ...]
    epochs: int
    log_frequency: int
    seeds: tuple[int, ...] = (42,)
    fixed_only: bool = False  # flags the released snapshot does not have
    crashes: bool = False  # the official script fails on these flags (``note`` says why); skipped
    note: str = ""
    gpu: bool = False  # too long for CPUs: ``scripts/official.py --gpu-runs`` (make gpu-batch) runs it


@dataclass(frozen=True)
class Series:
    run: str
    label: str | None = None
    color: str | None = None  # a key of reproduction.palette.COLORS or a colour matplotlib reads ("#1f77b4", "k")
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Panel:
    title: str = ""
    series: tuple[Series, ...] = ()
    y: str = "accuracy"  # a metrics column, or "accuracy": test (solid) and train (dashed) in percent
    log_x: bool = False
    log_y: bool = False
    out: str = ""  # the figure file (without suffix) this panel goes to; "" = the experiment's name
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plot:
    panels: tuple[Panel, ...] = ()
    function: str | None = None  # path/to/file.py[:function], relative to the repository root

    def series(self) -> dict[str, Series]:
        """Every series by run name, in panel order (the first of a run named twice)."""
        out: dict[str, Series] = {}
        for panel in self.panels:
            for s in panel.series:
                out.setdefault(s.run, s)
        return out


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    path: Path
    order: float = DEFAULT_ORDER
    figure: str = ""
    runs: dict[str, Run] = field(default_factory=dict)
    official: dict[str, OfficialRun] = field(default_factory=dict)
    plot: Plot | None = None
    postprocess: str | None = None
    claims: tuple[dict[str, Any], ...] = ()
    sweeps: tuple[Sweep, ...] = ()  # the grids that are plain products (scripts/reproduce.py --print-multirun)
    study: dict[str, Any] | None = None  # the ``study`` section as written; reproduction.study reads it

    def overrides(self) -> dict[str, list[str]]:
        """run name -> overrides, in order."""
        return {name: list(run.overrides) for name, run in self.runs.items()}

    def panel(self, title: str) -> Panel:
        """The plot panel titled ``title`` (custom plot functions look theirs up by title)."""
        for p in self.plot.panels if self.plot else ():
            if p.title == title:
                return p
        raise ManifestError(f"{self.path.name}: plot has no panel titled {title!r}")


def _fail(path: Path, where: str, message: str) -> ManifestError:
    return ManifestError(f"{path.name}: {where}: {message}" if where else f"{path.name}: {message}")


def _mapping(value: Any, path: Path, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, where, f"expected a mapping with the fields {', '.join(keys)}, not {value!r}")
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise _fail(
            path,
            f"{where}.{unknown[0]}" if where else str(unknown[0]),
            f"unknown field; choose from: {', '.join(keys)}",
        )
    return value


def _text(value: Any, path: Path, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, where, f"must be text (quote it), not {value!r}")
    return value


def _flag(value: Any, path: Path, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, where, f"must be true or false, not {value!r}")
    return value


def _count(value: Any, path: Path, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(path, where, f"must be a positive whole number, not {value!r}")
    return value


def _overrides(value: Any, path: Path, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(o, str) and "=" in o for o in value):
        raise _fail(path, where, f"must be a list of Hydra overrides (key=value), not {value!r}")
    return tuple(value)


def _run_name(name: Any, path: Path, where: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise _fail(path, where, f"run name {name!r} must be letters, digits, '_', '.' or '-' (it names a folder)")
    return name


def _value_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Sweep:
    """A grid that is a plain product (every value an override, named by itself): one Hydra
    multirun, ``python train.py -m <overrides> <key>=<v1>,<v2> ...``, each job in ``subdir``."""

    overrides: tuple[str, ...]
    swept: tuple[str, ...]  # key=v1,v2,...
    subdir: str  # the run-name template with Hydra interpolations
    runs: tuple[str, ...]


def _hydra_subdir(template: str) -> str:
    """A run-name template as ``hydra.sweep.subdir``: ``{loss}`` (a config group) becomes
    ``${hydra:runtime.choices.loss}``, ``{model.depth}`` (a value) ``${model.depth}``."""
    from grokking.paths import CONF_DIR

    def part(key: str) -> str:
        return f"${{hydra:runtime.choices.{key}}}" if (CONF_DIR / key).is_dir() else f"${{{key}}}"

    return re.sub(r"\{([^{}]*)\}", lambda m: part(m.group(1)), template)


def grid_sweep(grid: dict[str, Any], runs: list[tuple[str, tuple[str, ...]]]) -> Sweep | None:
    """The grid as one multirun, where it is a plain product; else None."""
    product = grid["product"]
    if any(isinstance(v, dict) for values in product.values() for v in values):
        return None
    swept = tuple(f"{key}={','.join(_value_text(v) for v in values)}" for key, values in product.items())
    return Sweep(tuple(grid.get("overrides", [])), swept, _hydra_subdir(grid["name"]), tuple(n for n, _ in runs))


def expand_grid(grid: Any, path: Path, where: str) -> list[tuple[str, tuple[str, ...]]]:
    """The runs of one ``grid`` entry: (name, overrides) in product order, the first key outermost."""
    grid = _mapping(grid, path, where, ("name", "overrides", "product"))
    template = _text(grid.get("name"), path, f"{where}.name")
    base = _overrides(grid.get("overrides", []), path, f"{where}.overrides")
    product = grid.get("product")
    if not isinstance(product, dict) or not product:
        raise _fail(path, f"{where}.product", "must map each swept key to its list of values")
    axes = []
    for key, values in product.items():
        at = f"{where}.product.{key}"
        if not isinstance(values, list) or not values:
            raise _fail(path, at, f"must be a non-empty list of values, not {values!r}")
        axis = []
        for v in values:
            if isinstance(v, dict):
                v = _mapping(v, path, at, ("value", "name", "with"))
                extra = _overrides(v.get("with", []), path, f"{at}.with")
                over = (f"{key}={_value_text(v['value'])}",) if "value" in v else ()
                name = str(v.get("name", _value_text(v.get("value", ""))))
                axis.append((name, over, extra))
            else:
                axis.append((_value_text(v), (f"{key}={_value_text(v)}",), ()))
        axes.append((key, axis))
    unknown = [k for k in re.findall(r"\{([^{}]*)\}", template) if k not in product]
    if unknown:
        raise _fail(path, f"{where}.name", f"{{{unknown[0]}}} is not a key of the product ({', '.join(product)})")
    runs = []
    for combo in itertools.product(*(axis for _, axis in axes)):
        names = {key: part for (key, _), (part, _, _) in zip(axes, combo, strict=True)}
        name = re.sub(r"\{([^{}]*)\}", lambda m, names=names: names[m.group(1)], template)
        swept = tuple(o for _, over, _ in combo for o in over)  # each axis' value, then the extras
        runs.append(
            (_run_name(name, path, f"{where}.name"), base + swept + tuple(o for *_, extra in combo for o in extra))
        )
    return runs


def _official(value: Any, path: Path, where: str) -> OfficialRun:
    keys = ("flags", "epochs", "log_frequency", "seeds", "fixed_only", "crashes", "note", "gpu")
    value = _mapping(value, path, where, keys)
    for key in ("flags", "epochs", "log_frequency"):
        if key not in value:
            raise _fail(path, f"{where}.{key}", "missing")
    flags = value["flags"]
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise _fail(path, f"{where}.flags", f"must be a list of text flags (quote numbers), not {flags!r}")
    seeds = value.get("seeds", [42])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise _fail(path, f"{where}.seeds", f"must be a list of whole numbers, not {seeds!r}")
    return OfficialRun(
        tuple(flags),
        _count(value["epochs"], path, f"{where}.epochs"),
        _count(value["log_frequency"], path, f"{where}.log_frequency"),
        tuple(seeds),
        _flag(value.get("fixed_only", False), path, f"{where}.fixed_only"),
        _flag(value.get("crashes", False), path, f"{where}.crashes"),
        _text(value.get("note", ""), path, f"{where}.note"),
        _flag(value.get("gpu", False), path, f"{where}.gpu"),
    )


def _series(value: Any, path: Path, where: str) -> Series:
    value = _mapping(value, path, where, ("run", "label", "color", "options"))
    run = _run_name(value.get("run"), path, f"{where}.run")
    label = None if value.get("label") is None else _text(value["label"], path, f"{where}.label")
    color = None if value.get("color") is None else _color(value["color"], path, f"{where}.color")
    return Series(run, label, color, _options(value.get("options", {}), path, f"{where}.options"))


def _color(value: Any, path: Path, where: str) -> str:
    from reproduction.palette import COLORS

    value = _text(value, path, where)
    if value not in COLORS and not re.fullmatch(r"#[0-9a-fA-F]{6}|[bgrcmykw]|C\d", value):
        raise _fail(path, where, f"{value!r} is neither a colour key ({', '.join(COLORS)}) nor '#rrggbb'")
    return value


def _options(value: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, where, f"must be a mapping, not {value!r}")
    return value


def _plot(value: Any, path: Path, runs: dict[str, Run]) -> Plot:
    value = _mapping(value, path, "plot", ("function", "panels"))
    function = value.get("function")
    if function is not None:
        file = _text(function, path, "plot.function").split(":", 1)[0]
        if not file.endswith(".py"):
            raise _fail(path, "plot.function", f"{function!r} must be path/to/file.py[:function]")
    panels = value.get("panels", [])
    if not isinstance(panels, list) or (function is None and not panels):
        raise _fail(path, "plot.panels", "must be a list of panels (each with title and series)")
    out = []
    for i, p in enumerate(panels, 1):
        at = f"plot.panels[{i}]"
        p = _mapping(p, path, at, ("title", "series", "y", "log_x", "log_y", "out", "options"))
        series = p.get("series", [])
        if not isinstance(series, list):
            raise _fail(path, f"{at}.series", f"must be a list of {{run, label, color}}, not {series!r}")
        panel = Panel(
            _text(p.get("title", ""), path, f"{at}.title"),
            tuple(_series(s, path, f"{at}.series[{j}]") for j, s in enumerate(series, 1)),
            _text(p.get("y", "accuracy"), path, f"{at}.y"),
            _flag(p.get("log_x", False), path, f"{at}.log_x"),
            _flag(p.get("log_y", False), path, f"{at}.log_y"),
            _text(p.get("out", ""), path, f"{at}.out"),
            _options(p.get("options", {}), path, f"{at}.options"),
        )
        if function is None:  # the generic drawing reads the runs themselves
            for j, s in enumerate(panel.series, 1):
                if s.run not in runs:
                    raise _fail(
                        path, f"{at}.series[{j}].run", f"{s.run!r} is not a run; choose from: {', '.join(runs)}"
                    )
        out.append(panel)
    return Plot(tuple(out), function)


def load(path: Path) -> Experiment:
    """The manifest at ``path`` (its name is the experiment's); read again only once the file changed."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as e:
        raise ManifestError(f"{path.name}: cannot be read ({e.strerror})") from None
    return _load(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _load(path: Path, mtime_ns: int, size: int) -> Experiment:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as e:
        raise ManifestError(f"{path.name}: cannot be read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ManifestError(f"{path.name}: not valid YAML{at} ({getattr(e, 'problem', e)})") from None
    data = _mapping(data, path, "", TOP)
    if "title" not in data:
        raise _fail(path, "title", "missing (one line saying what the experiment shows)")
    order = data.get("order", DEFAULT_ORDER)
    if not isinstance(order, int | float) or isinstance(order, bool):
        raise _fail(path, "order", f"must be a number, not {order!r}")
    target = _count(data.get("replicates", 1), path, "replicates")

    runs: dict[str, Run] = {}

    def add(name: str, overrides: tuple[str, ...], replicates: int, where: str) -> None:
        if name in runs:
            raise _fail(path, where, f"run {name!r} is named twice")
        runs[name] = Run(name, overrides, replicates)

    explicit = data.get("runs", {})
    if not isinstance(explicit, dict):
        raise _fail(path, "runs", f"must map run names to overrides, not {explicit!r}")
    for name, spec in explicit.items():
        at = f"runs.{name}"
        _run_name(name, path, at)
        if isinstance(spec, dict):
            spec = _mapping(spec, path, at, ("overrides", "replicates"))
            rep = _count(spec.get("replicates", target), path, f"{at}.replicates")
            add(name, _overrides(spec.get("overrides"), path, f"{at}.overrides"), rep, at)
        else:
            add(name, _overrides(spec, path, at), target, at)
    grids, sweeps = data.get("grid", []), []
    for i, grid in enumerate(grids if isinstance(grids, list) else [grids], 1):
        at = f"grid[{i}]" if isinstance(grids, list) else "grid"
        expanded = expand_grid(grid, path, at)
        for name, overrides in expanded:
            add(name, overrides, target, at)
        if (sweep := grid_sweep(grid, expanded)) is not None:
            sweeps.append(sweep)

    official = data.get("official", {})
    if not isinstance(official, dict):
        raise _fail(path, "official", f"must map run names to official runs, not {official!r}")
    for name in official:
        if name not in runs:
            raise _fail(path, f"official.{name}", f"{name!r} is not a run; choose from: {', '.join(runs)}")
    postprocess = data.get("postprocess")
    if postprocess is not None and ":" not in _text(postprocess, path, "postprocess"):
        raise _fail(path, "postprocess", f"{postprocess!r} must be module:function")
    claims = data.get("claims", [])
    if not isinstance(claims, list):
        raise _fail(path, "claims", "must be a list of rows, one per claim")
    study = data.get("study")
    if study is not None and not isinstance(study, dict):
        raise _fail(path, "study", f"must be a mapping (reproduction/study.py says its fields), not {study!r}")
    return Experiment(
        name=path.stem,
        title=_text(data["title"], path, "title"),
        path=path,
        order=order,
        figure=_text(data.get("figure", path.stem), path, "figure"),
        runs=runs,
        official={name: _official(v, path, f"official.{name}") for name, v in official.items()},
        plot=None if data.get("plot") is None else _plot(data["plot"], path, runs),
        postprocess=postprocess,
        claims=tuple(claims),
        sweeps=tuple(sweeps),
        study=study,
    )


def manifest_paths() -> list[Path]:
    """Every manifest file of :data:`FOLDERS` (a name found twice is an error)."""
    paths: dict[str, Path] = {}
    for folder in FOLDERS:
        for path in sorted(Path(folder).glob("*.yaml")):
            if path.stem in paths:
                raise ManifestError(f"{path}: experiment {path.stem!r} is also {paths[path.stem]}")
            paths[path.stem] = path
    return list(paths.values())


def experiments() -> dict[str, Experiment]:
    """Every experiment by name, in order (``order``, then name)."""
    loaded = [load(p) for p in manifest_paths()]
    return {e.name: e for e in sorted(loaded, key=lambda e: (e.order, e.name))}


def experiment(name: str) -> Experiment:
    """The experiment ``name``; an unknown name is one line with the choices."""
    for folder in FOLDERS:
        path = Path(folder) / f"{name}.yaml"
        if path.is_file():
            return load(path)
    raise ManifestError(f"unknown experiment {name!r}; choose from: {', '.join(p.stem for p in manifest_paths())}")


def replicated_runs() -> dict[str, dict[str, int]]:
    """experiment -> run -> target number of replicates, for the runs that get replicates
    (experiments without any left out)."""
    out = {}
    for name, exp in experiments().items():
        runs = {r.name: r.replicates for r in exp.runs.values() if r.replicated}
        if runs:
            out[name] = runs
    return out


def grid_sweeps(exp: Experiment) -> list[tuple[tuple[str, ...], tuple[str, ...], str]]:
    """The experiment's runs as Hydra multiruns, ``(overrides, swept, subdir)``: one per plain-product
    grid, then every other run as a multirun of one job (no sweep, its name as the subdir)."""
    swept = {name for sweep in exp.sweeps for name in sweep.runs}
    sweeps = [(s.overrides, s.swept, s.subdir) for s in exp.sweeps]
    return sweeps + [(exp.runs[n].overrides, (), n) for n in exp.runs if n not in swept]
