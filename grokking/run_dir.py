"""Which directories a run may write into: a new or empty one, or one that holds a run of this project.

Everything here is checked before anything is written, so a refused directory stays as it was:
a directory of the user's own files (their ``config.yaml``, a ``.hydra/`` of another program),
the current directory, a dangling symbolic link, or a run directory whose files have the wrong kind
(``metrics.csv`` a directory, ``.previous`` a file) is one ``error:`` line.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml

from grokking.checkpoint import CHECKPOINT, CONFIG, LOCK, METRICS, SNAPSHOTS, SUMMARY
from grokking.errors import ConfigError

HYDRA_DIR = ".hydra"  # Hydra's record of the run (config, overrides), written once the run is accepted
PREVIOUS = ".previous"  # the run that overwrite=true replaces, kept here until the new run has a checkpoint
WANDB = "wandb"  # the wandb logger's offline runs and run id
LOG = "train.log"  # Hydra's job log; scripts/reproduce.py's log of the run's output
FILES = (CHECKPOINT, METRICS, SUMMARY, SNAPSHOTS, CONFIG, LOCK, LOG)  # each a regular file
FOLDERS = (HYDRA_DIR, PREVIOUS, WANDB)  # each a directory
RESULTS = (CHECKPOINT, METRICS, SUMMARY, SNAPSHOTS, PREVIOUS)  # any of these: the directory holds a run
HYDRA_RECORD = ("config.yaml", "hydra.yaml", "overrides.yaml")


def config_keys() -> set[str]:
    from grokking.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def is_our_config(path: Path) -> bool:
    """Whether ``path`` is a config this project wrote (a mapping of the training config's keys)."""
    try:
        node = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(node, dict) and "epochs" in node and set(node) <= config_keys() | {"hydra"}


def foreign_entries(out_dir: Path) -> list[str]:
    """The entries of ``out_dir`` that are not part of a run of this project."""
    names = sorted(p.name for p in out_dir.iterdir())
    has_results = any(name in RESULTS for name in names)
    known = {*FILES, *FOLDERS}
    foreign = [n for n in names if n not in known and not (n.endswith(".tmp") and n[: -len(".tmp")] in known)]
    if not has_results:  # a run that has not logged yet: its config files must be ours
        if CONFIG in names and (out_dir / CONFIG).is_file() and not is_our_config(out_dir / CONFIG):
            foreign.append(CONFIG)
        hydra = out_dir / HYDRA_DIR
        if hydra.is_dir():
            inside = sorted(p.name for p in hydra.iterdir())
            record = hydra / "config.yaml"
            if set(inside) - set(HYDRA_RECORD) or (record.is_file() and not is_our_config(record)):
                foreign.append(HYDRA_DIR)
    return foreign


def check_run_dir(out_dir: Path) -> None:
    """Raise :class:`ConfigError` (one line, nothing written) where ``out_dir`` cannot take a run."""
    if out_dir.is_symlink() and not out_dir.exists():
        raise ConfigError(
            f"{out_dir} is a symbolic link to {os.readlink(out_dir)}, which does not exist; create its target or "
            "choose another run directory"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file, not a directory; choose another run directory")
    if not out_dir.is_dir():
        return
    if out_dir.resolve() == Path.cwd().resolve():
        raise ConfigError(
            f"{out_dir} is the current directory (as an empty hydra.run.dir= makes it); pass hydra.run.dir=DIR, "
            "a directory of the run's own"
        )
    try:
        foreign = foreign_entries(out_dir)
    except OSError as e:
        raise ConfigError(f"{out_dir} cannot be read ({e.strerror}); choose another run directory") from None
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(
            f"{out_dir} holds files that are not a run of this project ({shown}); nothing was written: "
            "choose a new or empty run directory"
        )
    for name in FILES:
        if (out_dir / name).is_dir():
            raise ConfigError(
                f"{out_dir / name} is a directory where the run keeps its {name} file; move it away or choose "
                "another run directory"
            )
    for name in FOLDERS:
        path = out_dir / name
        if (path.exists() or path.is_symlink()) and not path.is_dir():
            raise ConfigError(
                f"{path} is a file where the run keeps its {name}/ folder; move it away or choose another run directory"
            )


def os_error_line(err: OSError) -> str:
    """One line for a run directory that Hydra could not create (``err.filename`` names it)."""
    where = err.filename or "the run directory"
    if err.filename and Path(err.filename).is_symlink() and not Path(err.filename).exists():
        return f"{where} is a symbolic link to {os.readlink(err.filename)}, which does not exist; create its target or choose another run directory"
    return f"{where} cannot be used ({err.strerror}); choose another run directory"
