"""Command-line entry: checks config-group choices, then hands over to Hydra.

Hydra reports an unknown group option, an unknown key or a wrong type in several lines and exits
with code 1. This module turns each of them into the project's one ``error:`` line and exit code 2:
a group option is checked before anything is composed, and Hydra's own errors (composition, a
sweep's failed jobs, a run directory Hydra cannot create) are reported by :func:`report_errors`.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
import re
import shutil
import sys
import typing
from collections.abc import Callable
from dataclasses import is_dataclass
from pathlib import Path

import hydra
import yaml
from omegaconf import DictConfig

from grokking.config import TrainConfig, register_configs
from grokking.paths import CONF_DIR


def group_aliases(group: str) -> dict[str, str]:
    """Former option names of ``group``, each mapped to its option: a YAML whose only content is a
    defaults list naming one sibling (and ``_self_``)."""
    aliases = {}
    for path in (CONF_DIR / group).glob("*.yaml"):
        node = yaml.safe_load(path.read_text()) or {}
        targets = [d for d in node.get("defaults", []) if d != "_self_"] if set(node) == {"defaults"} else []
        if len(targets) == 1 and isinstance(targets[0], str):
            aliases[path.stem] = targets[0]
    return aliases


def group_options(group: str, aliases: bool = False) -> list[str]:
    """The options of a config group (the YAMLs of ``conf/<group>/``), former names too with ``aliases``."""
    former = set() if aliases else set(group_aliases(group))
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if p.stem not in former)


def group_values(arg: str) -> tuple[str, list[str]] | None:
    """``(group, options)`` that a ``group=...`` argument asks for: one option, or the options of a
    sweep (``a,b``, ``choice(a,b)``, ``range()``, ``glob(pattern)`` matched against the group's
    options). None for an argument that is not a group override or that the override grammar
    rejects (Hydra then reports it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob
    from hydra.errors import HydraException

    if "=" not in arg or arg.startswith("-"):
        return None
    key = arg.split("=", 1)[0].lstrip("+~")
    if not (CONF_DIR / key).is_dir():
        return None
    try:
        override = OverridesParser.create().parse_overrides([arg])[0]
        value = override.value()
        if isinstance(value, Glob):
            return key, value.filter(group_options(key, aliases=True))
        if override.is_sweep_override():
            return key, list(override.sweep_string_iterator())
    except (HydraException, ValueError, TypeError):  # e.g. interval(): not a list of options; Hydra says so
        return None
    return (key, [value]) if isinstance(value, str) and value not in ("", "null") else None


def removes_required_group(arg: str) -> str | None:
    """The error line for ``~group`` or ``group=null`` where every run needs the group (conf/config.yaml's
    defaults give it an option, not null)."""
    key, _, value = arg.partition("=")
    if not (key.startswith("~") or (value == "null" and not key.startswith("-"))):
        return None
    node = yaml.safe_load((CONF_DIR / "config.yaml").read_text()) or {}
    required = {k for d in node.get("defaults", []) if isinstance(d, dict) for k, v in d.items() if v is not None}
    if (group := key.lstrip("+~")) not in required:
        return None
    return f"{arg} would leave the run without the {group} group, which every run needs; choose one of: {', '.join(group_options(group))}"


def check_group_overrides(args: list[str]) -> str | None:
    """The error line for the first ``group=...`` argument naming an option that does not exist,
    or a ``glob()`` that matches none."""
    for arg in args:
        if (removed := removes_required_group(arg)) is not None:
            return removed
        if (asked := group_values(arg)) is None:
            continue
        key, options = asked
        if not options:
            return f"{arg} matches no option of {key}; choose among: {', '.join(group_options(key))}"
        for option in options:
            if option not in group_options(key, aliases=True):
                return f"{key}={option} is not valid; choose one of: {', '.join(group_options(key))}"
    return None


class JobFailed(Exception):
    """A job of a sweep ended with an error (already reported on its own line); ``job`` names its
    directory in the sweep."""

    job: str | None = None


# The error line of a sweep whose jobs failed. The sweep table (``grokking.sweep_summary.SweepTable``,
# the Hydra callback of conf/config.yaml) puts its own here when the sweep starts: it prints the table
# first and names every failed job. Without the table, the failed job's own line.
failed_sweep_line: Callable[[JobFailed], str] = str


def schema_keys(dotted: str) -> list[str] | None:
    """The keys valid beside ``dotted``'s last part (None outside the training config's schema)."""
    node: type = TrainConfig
    for part in dotted.split(".")[:-1]:
        hints = typing.get_type_hints(node)
        if part not in hints or not is_dataclass(hints[part]):
            return None
        node = hints[part]
    return list(typing.get_type_hints(node))


def hydra_error_line(err: BaseException) -> str:
    """One line for an error that Hydra or OmegaConf raised while composing the config."""
    message = str(err).strip().splitlines()
    cause = str(err.__cause__).strip().splitlines() if err.__cause__ is not None else []
    first = message[0] if message else type(err).__name__
    if m := re.match(r"Could not override '([^']+)'", first):
        key = m.group(1)
        valid = schema_keys(key)
        if valid is not None and key.split(".")[-1] not in valid:
            close = difflib.get_close_matches(key.split(".")[-1], valid, n=1)
            hint = f" (did you mean {'.'.join([*key.split('.')[:-1], close[0]])}?)" if close else ""
            return f"{key} is not a key of the config{hint}; choose one of: {', '.join(valid)}"
        return f"{key} cannot be overridden: {cause[0] if cause else first}"
    if m := re.match(r"Error merging override (.+)", first):
        return f"{m.group(1)} is not valid: {cause[0] if cause else first}"
    from hydra.errors import OverrideParseException

    if isinstance(err, OverrideParseException) and (arg := unparsable_override(sys.argv[1:])):
        return f"{arg} cannot be parsed ({first}); see https://hydra.cc/docs/advanced/override_grammar/basic/"
    return "; ".join(line.strip() for line in [first, *cause[:1]] if line.strip())


def report_errors(func: Callable[[], object]) -> object:
    """Stands in for Hydra's ``run_and_report``: errors in composing the config, a sweep whose jobs
    failed (each job has printed its own ``error:`` line) and a run directory that cannot be
    created end as one ``error:`` line with exit code 2. Any other exception (a bug) keeps Hydra's
    report, with its traceback."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return func()
    except Exception as err:
        from_task = raised_in_task(err)
        if isinstance(err, JobFailed):
            print(f"error: {failed_sweep_line(err)}", file=sys.stderr)
        elif raised_in_launcher(err) and not from_task:
            line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            print(f"error: the launcher could not start the sweep's jobs: {line}", file=sys.stderr)
        elif isinstance(err, (HydraException, OmegaConfBaseException)) and not from_task:
            print(f"error: {hydra_error_line(err)}", file=sys.stderr)
        elif isinstance(err, OSError) and not from_task:
            from grokking.run_dir import os_error_line

            print(f"error: {os_error_line(err)}", file=sys.stderr)
        else:
            return HYDRA_RUN_AND_REPORT(functools.partial(reraise, err))
        sys.exit(2)


def raised_in_task(err: BaseException) -> bool:
    """Whether ``err`` came out of a run's own code (a job of :func:`sweep_job`), not Hydra's."""
    tb = err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "job" and code.co_filename == __file__:
            return True
        tb = tb.tb_next
    return False


LAUNCHER_PACKAGES = ("hydra_plugins/hydra_submitit_launcher/", "submitit/")  # where a scheduler's errors come from


def raised_in_launcher(err: BaseException) -> bool:
    """Whether ``err`` came out of a cluster launcher's submission (e.g. sbatch refused the jobs)."""
    tb = err.__traceback__
    while tb is not None:
        if any(package in tb.tb_frame.f_code.co_filename.replace(os.sep, "/") for package in LAUNCHER_PACKAGES):
            return True
        tb = tb.tb_next
    return False


HYDRA_RUN_AND_REPORT: Callable = None  # Hydra's own, for the errors report_errors leaves to it


def reraise(err: BaseException) -> None:
    raise err


def unparsable_override(args: list[str]) -> str | None:
    """The first command-line override that Hydra's override grammar rejects."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in args:
        if arg.startswith("-"):
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            return arg


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


# launcher option -> the commands it submits with (a cluster's scheduler on PATH)
LAUNCHER_COMMANDS = {"slurm": ("sbatch", "srun")}


def check_launcher_plugins(args: list[str]) -> str | None:
    """The error line for the first ``launcher=`` option whose Hydra plugin is not installed, or
    whose scheduler's commands are not on PATH (``launcher=slurm`` off a SLURM cluster)."""
    for arg in args:
        if (asked := group_values(arg)) is None or asked[0] != "launcher":
            continue
        for option in asked[1]:
            module, extra = LAUNCHER_PLUGINS.get(option, (None, None))
            if module is not None and not plugin_installed(module):
                package = module.removeprefix("hydra_plugins.").replace("_", "-")
                install = f"pip install -e '.[{extra}]'" if extra else "pip install -e ."
                return f"launcher={option} needs the {package} plugin, which is not installed: {install}"
            if missing := [c for c in LAUNCHER_COMMANDS.get(option, ()) if shutil.which(c) is None]:
                return (
                    f"launcher={option} submits to a SLURM cluster, but {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not on PATH; run on the cluster's login node, "
                    "or try the same sweep here with launcher=submitit_local (or launcher=local)"
                )
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
                job = HydraConfig.get().job
                failed = JobFailed(
                    f"job {job.num} of the sweep ({job.override_dirname or 'no overrides'}) failed with exit code "
                    f"{exit.code}; the other jobs ran (see the job's error above)"
                )
                failed.job = Path(HydraConfig.get().runtime.output_dir).name
                raise failed from None

    return job


def run(task: Callable[[DictConfig], None]) -> None:
    error = check_group_overrides(sys.argv[1:]) or check_launcher_plugins(sys.argv[1:])
    if error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    register_configs()
    import hydra._internal.utils as hydra_utils

    global HYDRA_RUN_AND_REPORT
    if hydra_utils.run_and_report is not report_errors:
        HYDRA_RUN_AND_REPORT = hydra_utils.run_and_report
        hydra_utils.run_and_report = report_errors  # used by hydra.main for every step it reports
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(sweep_job(task))()


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose ``conf/config.yaml`` with overrides, as ``python train.py`` would (for tests and notebooks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))
