"""One name → entry table per config group: datasets, models, losses, optimizers (and, outside the
config, the claims' measures).

Each table lives beside the code it names (``grokking.data.DATASETS``, ``grokking.models.MODELS``,
``grokking.losses.LOSSES``, ``grokking.optim.OPTIMIZERS``) and is the only list of that group's
names. Each entry declares its own parameters (:class:`Param`: name, type, default, range, and the
value that reproduces runs saved before the parameter existed); the group's settings that every
option reads are the registry's ``shared`` parameters. From these specs alone come the group's
config schema (:func:`grokking.config.group_schema`), the arguments an option's code receives
(:meth:`Registry.arguments`), the range checks and the "has no effect with" errors
(:meth:`Registry.check`), resume compatibility (:meth:`Registry.old_values`), the documentation's
option tables and the tests' parametrizations. Adding an option is one ``register`` call (plus its
YAML in ``conf/<group>/`` and a test); ``docs/extending.md`` walks through each group.

    @DATASETS.register("my_task", params=(Param("n_points", int, 400, "points drawn", low=4),))
    def my_task(cfg) -> Dataset: ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from grokking.errors import ConfigError, choice

E = TypeVar("E")

SAME = object()  # Param.old: the parameter existed from the start (a saved config always holds it)


@dataclass(frozen=True)
class Param:
    """One setting of a config group: ``name`` (the key under the group), ``type`` (``int``,
    ``float``, ``bool``, ``str``, ``str | None`` or ``list[float]``: the schema's type, checked by
    Hydra when the config is composed), ``default`` (the schema's value; "not set"), ``doc`` (one
    line for the YAML comment and the docs table), a range (``low``/``high``, open with
    ``low_open``/``high_open``; applied to each item of a list), ``choices``, ``length`` (of a list)
    and ``old``: the value that reproduces runs saved before the parameter existed (a saved config
    that lacks the key resumes with it). ``expected`` overrides the range's wording in errors.
    ``needs``: the name of a parameter of the same group that switches this one on (a flag such as
    ``optimizer.grokfast``); while that one is at its default, this one away from its default has
    no effect and is refused."""

    name: str
    type: Any
    default: Any
    doc: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    length: int | None = None
    old: Any = SAME
    expected: str | None = None
    needs: str | None = None

    @property
    def old_value(self) -> Any:
        return self.default if self.old is SAME else self.old

    def expectation(self) -> str:
        """What a valid value is, in words (the end of a range error)."""
        if self.expected is not None:
            return self.expected
        what = "an integer" if self.type is int or self.type == int | None else "a number"
        show = lambda v: str(v) if isinstance(v, int) else f"{v:g}"  # noqa: E731
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{what} in {left}{show(self.low)}, {show(self.high)}{right}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {show(self.low)}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {show(self.high)}"
        return what

    def in_range(self, v: float) -> bool:
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return self.high is None or v < self.high or (not self.high_open and v == self.high)

    def check(self, key: str, value: Any) -> None:
        """Raise :class:`ConfigError` (one line naming ``key=value``) where ``value`` is not valid: not
        one of ``choices``, not finite, out of range, or a list of another length."""
        if self.choices:
            choice(key, value, self.choices)
        values = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ConfigError(f"{key}={value} is not valid; expected a finite number")
        ok = self.length is None or len(values) == self.length
        if ok and (self.low is not None or self.high is not None):
            ok = all(v is None or self.in_range(v) for v in values)
        if not ok:
            raise ConfigError(f"{key}={value} is not valid; expected {self.expectation()}")


def param_union(groups: list[tuple[Param, ...]], where: str) -> dict[str, Param]:
    """The parameters of several entries by name; a name declared twice must be the same spec."""
    found: dict[str, Param] = {}
    for params in groups:
        for p in params:
            if p.name in found and found[p.name] != p:
                raise ValueError(f"{where}.{p.name} is declared twice with different specs: {found[p.name]} and {p}")
            found[p.name] = p
    return found


class Registry(Generic[E]):
    """Names of one config group (``key`` is the config key that selects one, e.g. ``dataset.name``)
    mapped to entries of type ``entry`` built by :meth:`register` from a function and keyword
    properties. ``shared``: the parameters every option of the group reads. ``aliases`` maps an old
    name to the current one (committed configs keep working). ``listeners`` are called after every
    change (the config schema is rebuilt from the specs)."""

    def __init__(self, key: str, entry: Callable[..., E], shared: tuple[Param, ...] = ()):
        self.key = key
        self.group, _, self.selector = key.partition(".")
        self.label = self.group if self.selector == "name" else key  # how errors name an option: dataset=mnist
        self.entry = entry
        self.shared = shared
        self.entries: dict[str, E] = {}
        self.params: dict[str, tuple[Param, ...]] = {}  # each option's own parameters
        self.aliases: dict[str, str] = {}
        self.listeners: list[Callable[[], None]] = []

    def register(
        self,
        name: str,
        fn: Callable | None = None,
        *,
        params: tuple[Param, ...] = (),
        aliases: tuple[str, ...] = (),
        **props: Any,
    ):
        """Register ``fn`` (or, used as a decorator, the decorated function) under ``name`` with its
        parameters ``params``; returns the function unchanged. A name already taken is an error:
        one name, one meaning; so is a parameter name that another option declares differently."""

        def add(f: Callable) -> Callable:
            for n in (name, *aliases):
                if n in self.entries or n in self.aliases:
                    raise ValueError(f"{self.key}={n} is registered already")
            param_union([self.shared, *self.params.values(), tuple(params)], self.group)
            self.entries[name] = self.entry(f, **props)
            self.params[name] = tuple(params)
            self.aliases.update(dict.fromkeys(aliases, name))
            self.changed()
            return f

        return add if fn is None else add(fn)

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (tests register toy entries and take them away again)."""
        del self.entries[name]
        del self.params[name]
        self.aliases = {a: n for a, n in self.aliases.items() if n != name}
        self.changed()

    def changed(self) -> None:
        for listener in self.listeners:
            listener()

    def canonical(self, name: str) -> str:
        return self.aliases.get(name, name)

    def names(self, where: Callable[[E], bool] | None = None) -> tuple[str, ...]:
        """Registered names (not aliases) in registration order, those whose entry passes ``where``."""
        return tuple(n for n, e in self.entries.items() if where is None or where(e))

    def __contains__(self, name: object) -> bool:
        return name in self.entries or name in self.aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __getitem__(self, name: str) -> E:
        """The entry of ``name`` (or of the name it aliases); an unknown name is a :class:`ConfigError`
        naming the valid choices."""
        choice(self.key, self.canonical(name), self.names())
        return self.entries[self.canonical(name)]

    # -- parameters ---------------------------------------------------------------------------------
    def all_params(self) -> dict[str, Param]:
        """Every parameter of the group (shared ones first, then each option's), by name: the schema."""
        return param_union([self.shared, *self.params.values()], self.group)

    def reads(self, name: str) -> tuple[Param, ...]:
        """The parameters option ``name`` reads: the shared ones and its own."""
        self[name]  # an unknown name fails here, with the choices
        return (*self.shared, *self.params[self.canonical(name)])

    def readers(self, param: str) -> tuple[str, ...]:
        """The options that read parameter ``param`` (every option for a shared one)."""
        return tuple(n for n in self.names() if any(q.name == param for q in (*self.shared, *self.params[n])))

    def arguments(self, cfg: Any) -> dict[str, Any]:
        """The values of the selected option's own parameters in the group config ``cfg``, as the
        keyword arguments its code receives (lists as tuples)."""
        own = self.params[self.canonical(getattr(cfg, self.selector))]
        return {p.name: tuple(v) if isinstance(v := getattr(cfg, p.name), list) else v for p in own}

    def check(self, cfg: Any) -> None:
        """The group config ``cfg`` as its option reads it: every parameter the option reads is in
        range, and every other one is at its default (a value the option would ignore is refused,
        naming the options that read it). Raises :class:`ConfigError`, one line."""
        name = getattr(cfg, self.selector)
        reads = self.reads(name)
        for p in reads:
            p.check(f"{self.group}.{p.name}", getattr(cfg, p.name))
        own = {p.name for p in reads}
        for p in self.all_params().values():
            value = getattr(cfg, p.name)
            if p.name not in own and not same(value, p.default):
                users = ", ".join(self.readers(p.name))
                raise ConfigError(
                    f"{self.group}.{p.name}={value} has no effect with {self.label}={name}; "
                    f"it is read by {self.label}={users}"
                )
        for p in reads:
            switch = self.all_params()[p.needs] if p.needs is not None else None
            if switch is not None and not same(value := getattr(cfg, p.name), p.default):
                if same(off := getattr(cfg, switch.name), switch.default):
                    off, on = (str(off).lower(), "=true") if isinstance(off, bool) else (off, " set")
                    raise ConfigError(
                        f"{self.group}.{p.name}={value} has no effect with {self.group}.{switch.name}={off}; "
                        f"it is read with {self.group}.{switch.name}{on}"
                    )

    def old_values(self) -> dict[str, Any]:
        """Each parameter's value for a saved config that lacks it (runs saved before it existed)."""
        return {p.name: p.old_value for p in self.all_params().values()}


def same(a: Any, b: Any) -> bool:
    """Config values equal as the schema holds them (a list and a tuple of the same items are)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b
