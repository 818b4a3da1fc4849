"""Training: one full-batch loop, read top to bottom (:func:`train_in`).

``train(cfg, out_dir)`` is a plain function (tests call it in-process); ``main`` is the thin Hydra
entry point behind ``python train.py`` and ``python -m grokking.train``. The run directory (lock,
refusals, resume, checkpoints, summary) is :class:`grokking.run_dir.RunDir`; the metric columns are
:data:`grokking.metrics.COLUMNS`; snapshots and the Softmax Collapse intervention are the
per-epoch hooks of :data:`grokking.hooks.HOOKS`.

Metric row ``epoch = e`` describes the model after e updates, measured on the forward/backward pass
of update e + 1 (so the gradient diagnostics are those of the very step that follows).
"""

from __future__ import annotations

import math
import signal
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from grokking import metrics
from grokking.checkpoint import CONFIG, METRICS, SUMMARY, MetricsWriter, RunFileError, config_differences, read_summary
from grokking.config import StopWhenConfig, TrainConfig, unknown_keys
from grokking.data import build_dataset
from grokking.graphs import StepGraphs, make_capturable
from grokking.hooks import Epoch, build_hooks
from grokking.losses import DTYPES
from grokking.models import build_model
from grokking.optim import build_optimizer, optimizer_kind
from grokking.run_dir import (
    HYDRA_DIR,
    RunDir,
    check_run_dir,
    git_commit,
    has_run,
    lock_run_dir,
    not_extendable,
    prepare_run_dir,
    seed_summary,
)
from grokking.runtime import keep_freed_memory
from grokking.step import TrainStep, native_module
from grokking.tracking import build_tracker, progress
from grokking.validation import ConfigError, validate

# importable from here as before: the run directory's helpers, and the class tests patch
__all__ = ["train", "main", "to_config", "seed_summary", "git_commit", "lock_run_dir", "prepare_run_dir"]
__all__ += ["stop_rule_met", "completed_with_same_config", "MetricsWriter"]

EXIT_CODES = {"completed": 0, "diverged": 3, "interrupted": 130}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def logs_at(epoch: int, cfg: TrainConfig) -> bool:
    """Whether ``epoch`` writes a metric row: every ``log_every`` epochs, the last epoch, and with
    ``log_resolution`` r > 0 every max(1, ⌊r·epoch⌋) epochs, so that an onset read off the logged
    curve is within r of the epoch it happened at."""
    if epoch % cfg.log_every == 0 or epoch == cfg.epochs - 1:
        return True
    return cfg.log_resolution > 0 and epoch % max(1, int(cfg.log_resolution * epoch)) == 0


def stop_rule_met(rows: list[dict[str, float]], n_replicas: int, rule: StopWhenConfig) -> bool:
    """Whether ``rule.metric >= rule.threshold`` on each of the last ``rule.patience`` logged epochs,
    for every replica. Read from the rows alone, so a resumed run picks up its streak."""
    tail = rows[-rule.patience * n_replicas :]
    return len(tail) == rule.patience * n_replicas and all(r[rule.metric] >= rule.threshold for r in tail)


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self):
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self.handle)
            except ValueError:  # not in the main thread: leave signals alone
                pass
        return self

    def handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def to_config(cfg: TrainConfig | DictConfig) -> tuple[TrainConfig, dict[str, Any]]:
    """The config as a typed object and as a plain dict (for saving and comparing)."""
    node = OmegaConf.structured(cfg) if isinstance(cfg, TrainConfig) else cfg
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), node)
    cfg_dict = OmegaConf.to_container(merged, resolve=True)
    for key, valid in unknown_keys(cfg_dict):
        raise ConfigError(f"{key} is not a key of the config; choose one of: {', '.join(valid)}")
    return OmegaConf.to_object(merged), cfg_dict


def train(
    cfg: TrainConfig | DictConfig, out_dir: str | Path, record: Callable[[Path], None] | None = None
) -> dict[str, Any]:
    """Train as configured, writing config, metrics, checkpoint and summary into ``out_dir``.
    ``record(out_dir)``, when given, is called once the directory has accepted the run (the Hydra
    entry point writes ``.hydra/`` there), so a refused run records nothing."""
    cfg, cfg_dict = to_config(cfg)
    validate(cfg)
    with RunDir.open(Path(out_dir), cfg_dict, cfg.overwrite, cfg.extend, record) as run:
        return train_in(cfg, run)


def train_in(cfg: TrainConfig, run: RunDir) -> dict[str, Any]:
    """The training loop, in a run directory that has accepted the run."""
    # an extension (extend=true) keeps the old run's config beside its summary until its own summary
    # replaces it: until then the directory's result is still the old run
    if not run.extending:
        run.describe()

    # data -> model -> optimizer -> the forward/backward pass that trains them
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        keep_freed_memory()  # reuse freed activations instead of faulting in fresh pages each epoch
    model_dtype = DTYPES[cfg.precision.model_dtype]
    seeds = list(cfg.seeds) if cfg.seeds is not None else [cfg.seed]
    data = build_dataset(cfg.dataset).to(device, model_dtype)
    model = build_model(cfg.model, data, seeds).to(device, model_dtype)
    names = model.param_names()
    params = list(model.parameters())
    native = native_module(cfg.cpu_kernel) if device.type == "cpu" else None  # C++ kernels (cpu_kernel)
    optimizer = build_optimizer(cfg.optimizer, params, native)
    train_step = TrainStep(cfg, model, data, optimizer)

    # a checkpoint in the directory: go on from it; then note how this stretch of epochs is trained
    start = run.resume(model, optimizer)
    training_step = "native" if train_step.native is not None else "torch"  # cpu_kernel's choices
    run.begin_stretch(start, device, training_step, optimizer_kind(optimizer))
    tracker = build_tracker(cfg.logger, run.cfg_dict, run.path)
    hooks = build_hooks(cfg, run)  # snapshots, the SC intervention
    graphs = None
    if cfg.cuda_graph:
        make_capturable(optimizer, device)
        graphs = StepGraphs(lambda intervene: train_step(intervene)[2], optimizer)

    status, done, stopped_early = "completed", cfg.epochs, None
    rule = cfg.stop_when
    run.start_clock()
    bar = progress(range(start, cfg.epochs), initial=start, total=cfg.epochs)  # tqdm, or lines in a parallel sweep
    try:
        with StopSignal() as stop, closing(bar):
            for epoch in bar:
                log = logs_at(epoch, cfg)
                this = Epoch(epoch, params)
                for hook in hooks:
                    hook.before_step(this)

                # forward, loss, backward; then the optimizer step (one graph launch where replayed)
                replayed = graphs is not None and not log
                if replayed:
                    loss = graphs(this.intervene)
                else:
                    logits, per_sample, loss = train_step(this.intervene)
                if not math.isfinite(value := loss.item()):  # a Python float: cheaper than a tensor op
                    print(f"diverged at epoch {epoch}: train loss is {value}", file=sys.stderr)
                    status, done = "diverged", epoch
                    break
                if not replayed:
                    if log:  # the metric columns, measured on this step before the update
                        with torch.no_grad():
                            step = metrics.LoggedStep(
                                logits, per_sample, data.train_y, train_step.forward(data.test_x), data.test_y,
                                train_step.loss_fn, cfg.precision.loss_dtype, names, params,
                                grads=[p.grad.detach().clone() for p in params],
                                before=[p.detach().clone() for p in params],
                            )  # fmt: skip
                            values = metrics.logged_columns(step)
                    optimizer.step()
                    logits = per_sample = loss = None  # free this step's autograd graph before the next
                    if log:  # and those measured after it
                        values.update(metrics.logged_columns(step, after_update=True))
                        step = None
                        new_rows = rows_for(epoch, seeds, values)
                        run.append(new_rows)
                        tracker.log(new_rows)
                        bar.set_postfix(postfix(new_rows), refresh=False)

                # stop on the stop_when rule or a signal (each after a checkpoint), or checkpoint
                done = epoch + 1
                if log and done < cfg.epochs and rule.metric is not None and stop_rule_met(run.rows, len(seeds), rule):
                    run.checkpoint(done, model, optimizer, data, seeds)
                    reason = f"{rule.metric} >= {rule.threshold} on {rule.patience} consecutive logged epochs"
                    print(f"stopped at epoch {done}: {reason}", file=sys.stderr)
                    stopped_early = {"reason": reason, "epoch": epoch}
                    break
                if stop.received is not None:
                    run.checkpoint(done, model, optimizer, data, seeds)
                    print(f"interrupted at epoch {done}; rerun the same command to resume", file=sys.stderr)
                    status = "interrupted"
                    break
                if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.epochs:
                    run.checkpoint(done, model, optimizer, data, seeds)
            else:
                done = cfg.epochs
                run.checkpoint(done, model, optimizer, data, seeds)
        summary = run.finish(status, done, seeds, device, stopped_early)
        tracker.finish(summary)
    except BaseException:
        tracker.abort()  # a failed run still closes its tracker (e.g. finishes the wandb run)
        raise
    return summary


def rows_for(epoch: int, seeds: list[int], values: dict[str, torch.Tensor]) -> list[dict[str, float]]:
    """One row per replica; a single host transfer for all values."""
    keys = list(values)
    table = torch.stack([values[k].to(torch.float64) for k in keys]).cpu()
    return [{"epoch": epoch, "seed": s, **dict(zip(keys, table[:, r].tolist()))} for r, s in enumerate(seeds)]


def postfix(rows: list[dict[str, float]]) -> dict[str, str]:
    mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    return {
        "loss": f"{mean('train_loss'):.3g}",
        "train": f"{mean('train_acc'):.3f}",
        "test": f"{mean('test_acc'):.3f}",
        "SC": f"{mean('sc_fraction'):.2f}",
    }


def print_summary(summary: dict[str, Any], out_dir: Path) -> None:
    print(f"status: {summary['status']} after {summary['epoch']} epochs in {summary['wall_time_s']:.1f} s")
    for seed, s in summary["per_seed"].items():
        f = s.get("final")
        if f:
            print(
                f"seed {seed}: train_acc {f['train_acc']:.4f}  test_acc {f['test_acc']:.4f}  "
                f"train_loss {f['train_loss']:.4g}  sc_fraction {f['sc_fraction']:.3f}"
            )
    print(f"results: {out_dir}/{METRICS}, {out_dir}/{SUMMARY}")


def record_hydra_config(cfg: DictConfig) -> Callable[[Path], None]:
    """Writes Hydra's record of this run (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``)
    into a run directory. Hydra's own copy is off (``hydra.output_subdir: null``): it would be
    written before the run directory is checked, so a refused run would relabel the results there."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()

    def record(out_dir: Path) -> None:
        folder = out_dir / HYDRA_DIR
        folder.mkdir(exist_ok=True)
        OmegaConf.save(cfg, folder / "config.yaml")
        OmegaConf.save(OmegaConf.create({"hydra": hydra_cfg}), folder / "hydra.yaml")
        OmegaConf.save(hydra_cfg.overrides.task, folder / "overrides.yaml")

    return record


def completed_with_same_config(out_dir: Path, cfg: DictConfig) -> bool:
    """Whether ``out_dir`` already holds a completed run of this config (a sweep skips it)."""
    try:
        summary = read_summary(out_dir)
    except RunFileError:
        return False  # the run itself reports the damaged summary
    if summary is None or summary.get("status") != "completed" or not (out_dir / CONFIG).is_file():
        return False
    if cfg.extend and not_extendable(summary, cfg.epochs) is None:
        return False  # to be extended
    saved = OmegaConf.to_container(OmegaConf.load(out_dir / CONFIG), resolve=True)
    return not config_differences(saved, to_config(cfg)[1])


def main_from_hydra(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not str(HydraConfig.get().run.dir).strip() and HydraConfig.get().mode != RunMode.MULTIRUN:
        print("error: hydra.run.dir is empty; pass hydra.run.dir=DIR, a directory of the run's own", file=sys.stderr)
        sys.exit(2)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN and not cfg.overwrite and completed_with_same_config(out_dir, cfg):
        print(f"skipping {out_dir}: it already holds this completed run", file=sys.stderr)
        return
    record = record_hydra_config(cfg)
    try:
        summary = train(cfg, out_dir, record)
    except (ConfigError, RunFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        if out_dir.is_dir() and not has_run(out_dir) and not (out_dir / HYDRA_DIR).exists():
            try:  # an empty directory (e.g. a sweep's job) still says which config was refused
                check_run_dir(out_dir)  # never into a directory that is not ours
                record(out_dir)
            except (OSError, ConfigError):
                pass
        sys.exit(2)
    print_summary(summary, out_dir)
    if summary["status"] != "completed":
        sys.exit(EXIT_CODES[summary["status"]])


def main() -> None:
    from grokking.cli import run

    try:
        run(main_from_hydra)
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (which checkpoints and exits 130 itself)
        print(
            "error: interrupted (Ctrl-C) before training started or after it ended; rerun the same command to start "
            "or resume the run",
            file=sys.stderr,
        )
        sys.exit(EXIT_CODES["interrupted"])


if __name__ == "__main__":
    main()
