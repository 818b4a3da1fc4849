"""Typed configuration schema, derived from the options' own parameter specs.

Each option of a config group declares its parameters where it is registered
(:class:`grokking.registry.Param`, e.g. ``grokking.models.MODELS``). The group's schema
(``DatasetConfig``, ``ModelConfig``, ``LossConfig``, ``OptimizerConfig``) is built here from those
specs and rebuilt whenever an option is registered: one field per parameter of any option, typed
and defaulted by its spec. It is registered in Hydra's ConfigStore as the schema of
``conf/config.yaml``, so an unknown key or a wrong type fails when the config is composed; a value
that the chosen option does not read, or one out of its range, is refused by
:func:`grokking.validation.validate` from the same specs. Top-level settings carry their spec in
their field (:func:`setting`).
"""

from __future__ import annotations

import typing
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import dataclass, field, fields, is_dataclass, make_dataclass
from typing import Any

from omegaconf import MISSING

from grokking.registry import Param, Registry, same


def spec_field(p: Param) -> Any:
    """The dataclass field of a parameter: its default (a copy for a list), its spec in ``metadata``."""
    if isinstance(p.default, list):
        return field(default_factory=lambda d=p.default: list(d), metadata={"param": p})
    return field(default=p.default, metadata={"param": p})


def setting(default: Any, doc: str, **spec: Any) -> Any:
    """A top-level setting's field with its spec (range, choices, old value); the name and type come
    from the field itself (:func:`settings`)."""
    return field(
        default_factory=(lambda: list(default)) if isinstance(default, list) else NO_DEFAULT,
        default=NO_DEFAULT if isinstance(default, list) else default,
        metadata={"spec": {"default": default, "doc": doc, **spec}},
    )


def group_schema(registry: Registry, title: str) -> type:
    """The schema dataclass of one group: its selector (``name`` or ``base``), then every parameter
    of any of its options (the shared ones first), each with its spec's type and default."""
    params = registry.all_params().values()
    cls = make_dataclass(
        f"{title}Config",
        [(registry.selector, str, field(default=MISSING)), *[(p.name, p.type, spec_field(p)) for p in params]],
    )
    cls.__module__ = __name__
    cls.__doc__ = f"The ``{registry.group}`` group: every parameter of its options ({registry.key} selects one)."
    cls.registry = registry
    return cls


def values_schema(name: str, group: str, params: tuple[Param, ...]) -> type:
    """The schema dataclass of a group without options (every key is read)."""
    cls = make_dataclass(name, [(p.name, p.type, spec_field(p)) for p in params])
    cls.__module__ = __name__
    cls.__doc__ = f"The ``{group}`` group."
    cls.params = params
    return cls


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb
    project: str = "grokking"  # wandb: project the run belongs to
    entity: str | None = None  # wandb: user or team (null = your default entity)
    group: str | None = None  # wandb: run group (null = the sweep directory in a -m sweep, else none)
    tags: list[str] = field(default_factory=list)  # wandb: tags of the run
    mode: str = "offline"  # wandb: offline (files in the run directory) | online | disabled


@dataclass
class StopWhenConfig:
    metric: str | None = None  # test_acc | train_acc: end the run once it holds (null = never stop early)
    threshold: float = 0.99  # the metric must be >= this, in (0, 1]
    patience: int = 1  # ...on this many consecutive logged epochs, for every replica of the run


MAX_SEED = 2**63 - 1


@dataclass
class TrainConfig:
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    loss: LossConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    precision: PrecisionConfig = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    stop_when: StopWhenConfig = field(default_factory=StopWhenConfig)
    epochs: int = setting(500, "full-batch optimizer steps (1 epoch = 1 step)", low=1, expected="a positive integer")
    log_every: int = setting(10, "epochs between metric rows (the last is always logged)", low=1, expected="a positive integer")  # fmt: skip
    log_resolution: float = setting(
        0.0, "also log so that logged epochs near epoch e are <= this × e apart (0 = off)", low=0, high=1,
        high_open=True, expected="a fraction in [0, 1) (0 = off)",
    )  # fmt: skip
    checkpoint_every: int = setting(
        1000,
        "epochs between checkpoints (0 = only at the end)",
        low=0,
        expected="an integer >= 0 (0 = only at the end)",
    )
    seed: int = setting(0, "initialization seed", low=0, high=MAX_SEED)
    seeds: list[int] | None = setting(
        None, "several init seeds trained at once as one batched model", low=0, high=MAX_SEED,
        expected=f"integers in [0, {MAX_SEED}]",
    )  # fmt: skip
    sc_intervention_epoch: int | None = setting(
        None, "from this epoch on, zero ∂L/∂z_y of every sample (Fig. 8); below epochs", low=0,
        expected="an epoch >= 0 or null",
    )  # fmt: skip
    snapshot_every: int = setting(
        0, "epochs between parameter snapshots saved to snapshots.pt (0 = none; Fig. 7)", low=0,
        expected="an integer >= 0 (0 = none)",
    )  # fmt: skip
    device: str = setting("auto", "auto (CUDA when present) | cpu | cuda | cuda:N")
    cuda_graph: bool = setting(False, "CUDA only: replay the epochs that do not log as one captured CUDA graph")
    cpu_kernel: str = setting(
        "auto", "auto | native | torch: CPU training steps and AdamW updates in C++ (grokking.native)",
        choices=("auto", "native", "torch"),
    )  # fmt: skip
    overwrite: bool = setting(False, "allow replacing a completed run in the same directory")
    extend: bool = setting(False, "continue a completed run that trained its whole budget to a larger ``epochs``")


def settings() -> tuple[Param, ...]:
    """The top-level settings' specs, from :class:`TrainConfig`'s fields."""
    hints = typing.get_type_hints(TrainConfig)
    return tuple(
        Param(f.name, hints[f.name], **f.metadata["spec"]) for f in fields(TrainConfig) if "spec" in f.metadata
    )


def register_configs() -> None:
    """Register the schema so that ``conf/config.yaml`` can extend it."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def unknown_keys(values: dict, schema: type = None, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Dotted keys of ``values`` that the schema (``TrainConfig`` by default) does not have, each
    with the keys valid at its level (Hydra's ``+key=value`` can add such keys)."""
    schema = schema or TrainConfig
    hints = typing.get_type_hints(schema)
    found = []
    for key, value in values.items():
        if key not in hints:
            found.append((prefix + key, list(hints)))
        elif is_dataclass(hints[key]) and isinstance(value, dict):
            found += unknown_keys(value, hints[key], f"{prefix}{key}.")
    return found


def group_specs() -> dict[str, dict[str, Param]]:
    """Every group's parameters by name (the selector excluded), from the current schema."""
    hints = typing.get_type_hints(TrainConfig)
    return {
        f.name: {g.name: g.metadata["param"] for g in fields(hints[f.name]) if "param" in g.metadata}
        for f in fields(TrainConfig)
        if hasattr(hints[f.name], "registry") or hasattr(hints[f.name], "params")
    }


def with_old_values(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config (a plain dict) with every key it lacks that a spec declares filled in with the
    spec's old value: the value that reproduces runs saved before the parameter existed."""
    out = dict(saved)
    for group, params in group_specs().items():
        if isinstance(out.get(group), dict):
            out[group] = {**{k: p.old_value for k, p in params.items() if k not in out[group]}, **out[group]}
    for p in settings():
        out.setdefault(p.name, p.old_value)
    return out


def missing_keys(saved: dict[str, Any]) -> dict[str, Any]:
    """The dotted keys that a saved config lacks, each with the old value it resumes with."""
    filled = with_old_values(saved)
    found = {}
    for key, value in filled.items():
        if isinstance(value, dict) and key in group_specs():
            found.update({f"{key}.{k}": v for k, v in value.items() if k not in saved.get(key, {})})
        elif key not in saved:
            found[key] = value
    return found


# -- the group schemas, rebuilt from the registries whenever an option is registered ----------------
from grokking.data import DATASETS  # noqa: E402  (these modules import nothing from here at run time)
from grokking.losses import DTYPES, LOSSES  # noqa: E402
from grokking.models import MODELS  # noqa: E402
from grokking.optim import OPTIMIZERS  # noqa: E402

PRECISION = (
    Param("loss_dtype", str, "float32", "dtype of softmax / loss", choices=tuple(DTYPES)),
    Param(
        "model_dtype", str, "float32", "dtype of parameters, inputs, optimizer state", choices=("float32", "float64")
    ),  # fmt: skip
    Param(
        "backward_log2_scale",
        int,
        40,
        "backpropagate ×2^k, unscale exactly (0 = off)",
        0,
        64,
        old=0,
        expected="an integer exponent in [0, 64]",
    ),  # fmt: skip
)
GROUPS: dict[str, tuple[Registry, str]] = {
    "dataset": (DATASETS, "Dataset"),
    "model": (MODELS, "Model"),
    "loss": (LOSSES, "Loss"),
    "optimizer": (OPTIMIZERS, "Optimizer"),
}
PrecisionConfig = values_schema("PrecisionConfig", "precision", PRECISION)
DatasetConfig = ModelConfig = LossConfig = OptimizerConfig = None  # set by rebuild()


def rebuild() -> None:
    """Rebuild the group schemas from the registries (called after every registration)."""
    for registry, title in GROUPS.values():
        globals()[f"{title}Config"] = group_schema(registry, title)


for _registry, _ in GROUPS.values():
    _registry.listeners.append(rebuild)
rebuild()

__all__ = [
    "DatasetConfig",
    "LoggerConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PrecisionConfig",
    "StopWhenConfig",
    "TrainConfig",
    "same",
]


# -- the documentation's option table, generated from the same specs -------------------------------
DOCS_TABLE = ("<!-- options: generated by `python -m grokking.config` -->", "<!-- /options -->")


def type_name(t: Any) -> str:
    return t.__name__ if isinstance(t, type) else str(t).replace("typing.", "").replace(" | None", " or null")


def param_row(key: str, p: Param, readers: str) -> str:
    ranged = p.low is not None or p.high is not None or p.expected is not None
    valid = ", ".join(map(str, p.choices)) if p.choices else p.expectation() if ranged else ""
    old = "" if p.old_value == p.default else f" (runs saved before it: {p.old_value})"
    default = "null" if p.default is None else str(p.default).lower() if p.type is bool else p.default
    doc = p.doc.replace("|", "\\|")
    return f"| `{key}` | {readers} | {type_name(p.type)} | `{default}`{old} | {valid} | {doc} |"


def options_table() -> str:
    """Markdown: every parameter of every group, which options read it, its type, default and range."""
    lines = ["| key | read by | type | default | valid | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for group, (registry, _) in GROUPS.items():
        for name, p in registry.all_params().items():
            readers = registry.readers(name)
            shown = "every option" if len(readers) == len(registry.names()) else ", ".join(f"`{r}`" for r in readers)
            lines.append(param_row(f"{group}.{name}", p, shown))
    lines += [param_row(f"precision.{p.name}", p, "") for p in PRECISION]
    lines += [param_row(p.name, p, "") for p in settings()]
    return "\n".join(lines)


def write_docs_table(path: str = "docs/configuration.md") -> bool:
    """Put :func:`options_table` between the markers of ``path``; whether the file changed."""
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / path
    text = page.read_text()
    head, rest = text.split(DOCS_TABLE[0], 1)
    _, tail = rest.split(DOCS_TABLE[1], 1)
    new = f"{head}{DOCS_TABLE[0]}\n{options_table()}\n{DOCS_TABLE[1]}{tail}"
    page.write_text(new)
    return new != text


if __name__ == "__main__":
    print("docs/configuration.md:", "updated" if write_docs_table() else "up to date")
