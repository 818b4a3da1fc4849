"""Command-line entry: checks config-group choices, then hands over to Hydra.

Hydra reports an unknown group option in several lines; this module catches it first and prints
one line naming the bad value and the valid choices, before anything is composed or run.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from grokking.config import register_configs

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_group_overrides(args: list[str]) -> str | None:
    """The error line for the first ``group=option`` argument naming an option that does not exist."""
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key not in groups or value in ("", "null"):
            continue
        for option in value.split(","):
            if option not in group_options(key):
                return f"{key}={option} is not valid; choose one of: {', '.join(group_options(key))}"
    return None


# launcher option -> (the Hydra plugin's module, the pip extra that installs it, or None: a core dependency)
LAUNCHER_PLUGINS = {
    "local": ("hydra_plugins.hydra_joblib_launcher", None),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}


def plugin_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def check_launcher_plugins(args: list[str]) -> str | None:
    """The error line for the first ``launcher=`` option whose Hydra plugin is not installed."""
    for arg in args:
        if arg.startswith("launcher="):
            for option in arg.split("=", 1)[1].split(","):
                module, extra = LAUNCHER_PLUGINS.get(option, (None, None))
                if module is not None and not plugin_installed(module):
                    package = module.removeprefix("hydra_plugins.").replace("_", "-")
                    install = f"pip install -e '.[{extra}]'" if extra else "pip install -e ."
                    return f"launcher={option} needs the {package} plugin, which is not installed: {install}"
    return None


def sweep_job(task: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """``task`` as one job of a sweep (-m): a run that diverged is a result, recorded in its
    summary.json, so the sweep goes on; a config error becomes an exception that Hydra records as
    a failed job (the other jobs still run). Ctrl-C (exit code 130) still stops the sweep.
    A single run (no -m) keeps its exit codes.

    ``OMP_NUM_THREADS``, when set (by joblib's workers, or by a launcher's ``hydra.job.env_set``
    just before the job starts), sets torch's thread count, so parallel jobs share the cores."""

    @functools.wraps(task)
    def job(cfg: DictConfig) -> None:
        import torch
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
        try:
            task(cfg)
        except SystemExit as exit:
            if HydraConfig.get().mode != RunMode.MULTIRUN or exit.code in (0, 130):
                raise
            if exit.code != 3:  # 3 = diverged
                raise RuntimeError(
                    f"job {HydraConfig.get().job.override_dirname} failed (exit code {exit.code})"
                ) from None

    return job


def run(task: Callable[[DictConfig], None]) -> None:
    error = check_group_overrides(sys.argv[1:]) or check_launcher_plugins(sys.argv[1:])
    if error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    register_configs()
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(sweep_job(task))()


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose ``conf/config.yaml`` with overrides, as ``python train.py`` would (for tests and notebooks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))
