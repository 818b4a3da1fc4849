"""One name → entry table per config group: datasets, models, losses, optimizers (and, outside the
config, the claims' measures, ``reproduction.measures.MEASURES``).

Each table lives beside the code it names (``grokking.data.DATASETS``, ``grokking.models.MODELS``,
``grokking.losses.LOSSES``, ``grokking.optim.OPTIMIZERS``) and is the only list of that group's
names: validation's choices, the C++ path's applicability check, the test parametrizations and
the documentation's option tables all read it. Adding an option is one ``register`` call (plus
its YAML in ``conf/<group>/`` and a test); ``docs/extending.md`` walks through each group.

    @DATASETS.register("my_task", tokens=False)
    def my_task(cfg: DatasetConfig) -> Dataset: ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from grokking.errors import choice

E = TypeVar("E")


class Registry(Generic[E]):
    """Names of one config group (``key`` is the config key that selects one, e.g. ``dataset.name``)
    mapped to entries of type ``entry`` built by :meth:`register` from a function and keyword
    properties. ``aliases`` maps an old name to the current one (committed configs keep working)."""

    def __init__(self, key: str, entry: Callable[..., E]):
        self.key = key
        self.entry = entry
        self.entries: dict[str, E] = {}
        self.aliases: dict[str, str] = {}

    def register(self, name: str, fn: Callable | None = None, *, aliases: tuple[str, ...] = (), **props: Any):
        """Register ``fn`` (or, used as a decorator, the decorated function) under ``name``; returns
        the function unchanged. A name already taken is an error: one name, one meaning."""

        def add(f: Callable) -> Callable:
            for n in (name, *aliases):
                if n in self.entries or n in self.aliases:
                    raise ValueError(f"{self.key}={n} is registered already")
            self.entries[name] = self.entry(f, **props)
            self.aliases.update(dict.fromkeys(aliases, name))
            return f

        return add if fn is None else add(fn)

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (tests register toy entries and take them away again)."""
        del self.entries[name]
        self.aliases = {a: n for a, n in self.aliases.items() if n != name}

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
