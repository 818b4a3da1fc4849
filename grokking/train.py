"""Training: one full-batch loop, read top to bottom.

``train(cfg, out_dir)`` is a plain function (tests call it in-process); ``main`` is the thin Hydra
entry point behind ``python train.py`` and ``python -m grokking.train``.

Metric row ``epoch = e`` describes the model after e updates, measured on the forward/backward pass
of update e + 1 (so the gradient diagnostics are those of the very step that follows).
"""

from __future__ import annotations

import fcntl
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from grokking import metrics
from grokking.checkpoint import (
    CHECKPOINT,
    CONFIG,
    LOCK,
    METRICS,
    SNAPSHOTS,
    SUMMARY,
    MetricsWriter,
    RunFileError,
    atomic_write,
    config_differences,
    load_checkpoint,
    missing_added_keys,
    read_summary,
    save_checkpoint,
    write_failed,
    write_json,
)
from grokking.config import StopWhenConfig, TrainConfig, unknown_keys
from grokking.data import build_dataset
from grokking.graphs import StepGraphs, make_capturable
from grokking.losses import DTYPES
from grokking.models import build_model
from grokking.optim import build_optimizer, load_optimizer_state, optimizer_kind
from grokking.run_dir import HYDRA_DIR, PREVIOUS, check_run_dir
from grokking.runtime import keep_freed_memory
from grokking.step import TrainStep, native_module
from grokking.tracking import build_tracker, progress
from grokking.validation import ConfigError, validate

EXIT_CODES = {"completed": 0, "diverged": 3, "interrupted": 130}
FINISHED = ("completed", "diverged")  # a finished run is a result: kept unless overwrite=true
RUN_FILES = (CHECKPOINT, METRICS, SUMMARY, SNAPSHOTS, CONFIG, HYDRA_DIR)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict[str, Any]:
    import hydra

    return {
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "hydra": hydra.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
    }


def first_epoch(rows: list[dict[str, float]], key: str, threshold: float) -> int | None:
    """The first logged epoch at which ``rows[key] >= threshold``."""
    return next((int(r["epoch"]) for r in rows if r[key] >= threshold), None)


def seed_summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Final metrics and milestones of one replica."""
    if not rows:
        return {}
    final = rows[-1]
    return {
        "final": {k: v for k, v in final.items() if "/" not in k},
        "best_test_acc": max(r["test_acc"] for r in rows),
        "epoch_train_acc_100": first_epoch(rows, "train_acc", 1.0),
        "epoch_test_acc_50": first_epoch(rows, "test_acc", 0.5),
        "epoch_test_acc_95": first_epoch(rows, "test_acc", 0.95),
        "epoch_test_acc_99": first_epoch(rows, "test_acc", 0.99),
        "epoch_sc_50": first_epoch(rows, "sc_fraction", 0.5),
    }


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


def lock_run_dir(out_dir: Path):
    """Hold an exclusive lock on the run directory for this process's lifetime (two processes
    training into one directory would interleave their metric rows)."""
    try:
        handle = open(out_dir / LOCK, "w")  # kept open: the lock lives as long as the handle
    except OSError as e:
        raise ConfigError(f"{out_dir} cannot be written ({e.strerror}); choose another directory") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(
            f"{out_dir} is in use by another training process; wait for it or choose another directory"
        ) from None
    return handle


class Replacement:
    """``overwrite=true``: the run in the directory is moved into ``.previous/`` rather than deleted,
    and is deleted only once the new run has written its first checkpoint or its summary. If the new
    run fails before that, or the process dies, the old run is moved back (on failure at once, after
    a crash by the next run in the directory). ``wandb/`` is never touched, except that the old run's
    wandb id moves aside, so the new run starts a wandb run of its own."""

    def __init__(self, out_dir: Path):
        self.out_dir, self.previous = out_dir, out_dir / PREVIOUS

    @property
    def pending(self) -> bool:
        return self.previous.is_dir()

    def move_aside(self) -> None:
        from grokking.tracking import WandbTracker

        self.previous.mkdir()
        for name in RUN_FILES:
            if (self.out_dir / name).exists():
                os.replace(self.out_dir / name, self.previous / name)
        run_id = self.out_dir / "wandb" / WandbTracker.RUN_ID
        if run_id.is_file():
            os.replace(run_id, self.previous / WandbTracker.RUN_ID)

    def restore(self) -> None:
        """Put the old run back, dropping whatever the new run wrote."""
        from grokking.tracking import WandbTracker

        if not self.pending:
            return
        for name in RUN_FILES:
            path = self.out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            if (self.previous / name).exists():
                os.replace(self.previous / name, path)
        if (self.previous / WandbTracker.RUN_ID).is_file():
            os.replace(self.previous / WandbTracker.RUN_ID, self.out_dir / "wandb" / WandbTracker.RUN_ID)
        shutil.rmtree(self.previous)
        print(f"restored the previous run in {self.out_dir}", file=sys.stderr)

    def discard(self) -> None:
        """The new run has a result of its own: drop the old run."""
        if self.pending:
            shutil.rmtree(self.previous)


def has_run(out_dir: Path) -> bool:
    return any((out_dir / name).exists() for name in (CHECKPOINT, METRICS, SUMMARY))


def not_extendable(summary: dict[str, Any], epochs: int) -> str | None:
    """Why a finished run cannot be continued to ``epochs`` (``extend=true``), or None if it can: it
    must have completed its whole budget, not stopped early on ``stop_when`` or diverged."""
    if summary["status"] != "completed":
        return f"holds a {summary['status']} run, which cannot be extended; pass overwrite=true to redo it"
    if summary.get("stopped_early") is not None:
        return f"holds a run that stopped early at epoch {summary['epoch']} on its stop_when rule; there is nothing to extend"
    if epochs <= summary["epoch"]:
        return f"has already trained {summary['epoch']} epochs; pass epochs > {summary['epoch']} to extend it"
    return None


def prepare_run_dir(
    out_dir: Path, cfg_dict: dict[str, Any], overwrite: bool, extend: bool = False
) -> tuple[dict[str, Any] | None, bool]:
    """Refuse to clobber a finished run; return the checkpoint to resume from, if any, and whether
    the resumption extends a finished run. With ``overwrite`` the old run is moved aside (see
    :class:`Replacement`); with ``extend`` a run that completed its whole budget resumes from its
    final checkpoint to the larger ``epochs``."""
    replacement = Replacement(out_dir)
    replacement.restore()  # a replacement that never got its first checkpoint (the process died)
    try:
        summary = read_summary(out_dir)
    except RunFileError as e:
        if not overwrite:
            raise ConfigError(f"{e}, or pass overwrite=true") from None
        summary = None
    ckpt_path = out_dir / CHECKPOINT
    extending = summary is not None and summary["status"] in FINISHED and extend and not overwrite
    if extending and (why := not_extendable(summary, cfg_dict["epochs"])):
        raise ConfigError(f"extend=true: {out_dir} {why}")
    if summary is not None and summary["status"] in FINISHED and not overwrite and not extending:
        extendable = not_extendable(summary, max(cfg_dict["epochs"], summary.get("epoch", 0) + 1)) is None
        extend_hint = " extend=true with more epochs," if extendable else ""
        raise ConfigError(
            f"{out_dir} already holds a {summary['status']} run; pass overwrite=true,{extend_hint} or choose another "
            "directory"
        )
    if overwrite:
        if has_run(out_dir):
            replacement.move_aside()
        return None, False
    if not ckpt_path.is_file():
        return None, False
    try:
        ckpt = load_checkpoint(ckpt_path)
    except RunFileError as e:
        raise ConfigError(str(e)) from None
    diffs = config_differences(ckpt["config"], cfg_dict)
    if diffs:
        older = [f"{k}={v}" for k, v in missing_added_keys(ckpt["config"]).items() if k in diffs]
        hint = f" (it was saved before {', '.join(older)} became configurable: add that to resume it)" if older else ""
        raise ConfigError(
            f"{out_dir} holds a run with a different config ({', '.join(diffs)}){hint}; "
            "pass overwrite=true or choose another directory"
        )
    if ckpt["epoch"] > cfg_dict["epochs"]:
        raise ConfigError(
            f"epochs={cfg_dict['epochs']} is fewer than the {ckpt['epoch']} epochs {out_dir} has already trained; "
            f"pass epochs>={ckpt['epoch']} to resume it, overwrite=true, or choose another directory"
        )
    return ckpt, extending


def logs_at(epoch: int, cfg: TrainConfig) -> bool:
    """Whether ``epoch`` writes a metric row: every ``log_every`` epochs, the last epoch, and with
    ``log_resolution`` r > 0 every max(1, ⌊r·epoch⌋) epochs, so that an onset read off the logged
    curve is within r of the epoch it happened at."""
    if epoch % cfg.log_every == 0 or epoch == cfg.epochs - 1:
        return True
    return cfg.log_resolution > 0 and epoch % max(1, int(cfg.log_resolution * epoch)) == 0


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
    out_dir = Path(out_dir)
    check_run_dir(out_dir)  # nothing is written into a directory that is not a run of ours
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{out_dir} cannot be created ({e.strerror}); choose another run directory") from None
    lock = lock_run_dir(out_dir)
    try:
        return _train(cfg, cfg_dict, out_dir, record)
    except OSError as e:  # a write into the run directory failed (disk full, read-only, permissions)
        if e.filename is None or out_dir.resolve() not in Path(e.filename).resolve().parents:
            raise
        raise write_failed(Path(e.filename), e) from None
    finally:
        lock.close()


def _train(
    cfg: TrainConfig, cfg_dict: dict[str, Any], out_dir: Path, record: Callable[[Path], None] | None
) -> dict[str, Any]:
    ckpt, extending = prepare_run_dir(out_dir, cfg_dict, cfg.overwrite, cfg.extend)
    replacement = Replacement(out_dir)
    try:
        return _train_accepted(cfg, cfg_dict, out_dir, record, ckpt, extending, replacement)
    except BaseException:
        replacement.restore()  # the new run failed before its first checkpoint: the old one comes back
        raise


def _train_accepted(
    cfg: TrainConfig,
    cfg_dict: dict[str, Any],
    out_dir: Path,
    record: Callable[[Path], None] | None,
    ckpt: dict[str, Any] | None,
    extending: bool,
    replacement: Replacement,
) -> dict[str, Any]:
    def describe_run() -> None:
        atomic_write(out_dir / CONFIG, OmegaConf.to_yaml(cfg_dict).encode())
        if record is not None:
            record(out_dir)

    # an extension (extend=true) keeps the old run's config beside its summary until its own summary
    # replaces it: until then the directory's result is still the old run
    if not extending:
        describe_run()

    # data -> model -> optimizer
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
    loss_fn, forward = train_step.loss_fn, train_step.forward

    start, rows, elapsed_before, snapshots, stretches = 0, [], 0.0, [], []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        load_optimizer_state(optimizer, ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        start, rows, elapsed_before = ckpt["epoch"], ckpt["rows"], ckpt["elapsed_s"]
        stretches = [s for s in ckpt.get("stretches", []) if s["from_epoch"] < start]
        if (out_dir / SNAPSHOTS).is_file():  # written before each checkpoint: drop any taken after it
            snapshots = [s for s in load_checkpoint(out_dir / SNAPSHOTS)["snapshots"] if s[0] < start]
        print(f"resuming {out_dir} from epoch {start}", file=sys.stderr)
    # how each stretch of epochs was trained: a resumed run may change device, cpu_kernel or code;
    # the commit is read as the stretch starts (the summary's top-level git_commit when it is written)
    this_stretch = {
        "from_epoch": start,
        "git_commit": git_commit(),
        "device": str(device),
        "training_step": "native" if train_step.native is not None else "torch",  # cpu_kernel's choices
        "optimizer_step": optimizer_kind(optimizer),
    }
    stretches.append(this_stretch)
    writer = MetricsWriter(out_dir / METRICS, rows)
    tracker = build_tracker(cfg.logger, cfg_dict, out_dir)

    def checkpoint(epoch: int) -> None:
        if snapshots:
            save_checkpoint(out_dir / SNAPSHOTS, {"param_names": names, "seeds": seeds, "snapshots": snapshots})
        save_checkpoint(
            out_dir / CHECKPOINT,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "rows": rows,
                "rng": {"torch": torch.get_rng_state()},
                "config": cfg_dict,
                "seeds": seeds,
                "param_names": names,
                "split": {"train_idx": data.train_idx, "test_idx": data.test_idx},
                "elapsed_s": elapsed_before + time.perf_counter() - t0,
                "stretches": stretches,
            },
        )
        replacement.discard()  # the new run has a checkpoint: a run it replaces is gone for good

    def finish(status: str, epoch: int, stopped_early: dict[str, Any] | None = None) -> dict[str, Any]:
        wall = elapsed_before + time.perf_counter() - t0
        if extending:
            describe_run()
        writer.sync()  # metrics.csv holds every row, also where it was deleted or cut during the run
        summary = {
            "status": status,
            "epoch": epoch,
            "epochs": cfg.epochs,
            "stopped_early": stopped_early,
            "seeds": seeds,
            # the one choice that trained every epoch, or "mixed" (resumed differently: see stretches)
            **{k: uniform([s[k] for s in stretches]) for k in ("training_step", "optimizer_step")},
            "stretches": stretches,
            "wall_time_s": wall,
            "epochs_per_s": epoch / wall if wall > 0 else None,
            **environment(device),
            "per_seed": {str(s): seed_summary([r for r in rows if r["seed"] == s]) for s in seeds},
        }
        write_json(out_dir / SUMMARY, summary)
        replacement.discard()
        tracker.finish(summary)
        return summary

    intervene_from = cfg.sc_intervention_epoch
    rule = cfg.stop_when
    graphs = None
    if cfg.cuda_graph:
        make_capturable(optimizer, device)
        graphs = StepGraphs(lambda intervene: train_step(intervene)[2], optimizer)
    t0 = time.perf_counter()
    epoch = start
    bar = progress(range(start, cfg.epochs), initial=start, total=cfg.epochs)  # tqdm, or lines in a parallel sweep
    with StopSignal() as stop:
        try:
            for epoch in bar:
                log = logs_at(epoch, cfg)
                if cfg.snapshot_every and epoch % cfg.snapshot_every == 0:
                    snapshots.append((epoch, torch.cat([p.detach().flatten(1) for p in params], 1).float().cpu()))
                intervene = intervene_from is not None and epoch >= intervene_from
                replayed = graphs is not None and not log
                if replayed:  # forward, backward and the optimizer step, in one graph launch
                    loss = graphs(intervene)
                else:
                    logits, per_sample, loss = train_step(intervene)
                if not math.isfinite(value := loss.item()):  # a Python float: cheaper than a tensor op
                    print(f"diverged at epoch {epoch}: train loss is {value}", file=sys.stderr)
                    return finish("diverged", epoch)
                if not replayed:
                    if log:
                        grads = [p.grad.detach().clone() for p in params]
                        before = [p.detach().clone() for p in params]
                        with torch.no_grad():
                            test_logits = forward(data.test_x)
                            step = metrics.LoggedStep(
                                logits, per_sample, data.train_y, test_logits, data.test_y,
                                loss_fn, cfg.precision.loss_dtype, names, params, grads,
                            )  # fmt: skip
                            values = metrics.logged_columns(step)
                    optimizer.step()
                    logits = per_sample = loss = None  # free this step's autograd graph before the next
                    if log:
                        values["absorbed_fraction"] = metrics.absorbed_fraction(before, params, grads)
                        new_rows = rows_for(epoch, seeds, values)
                        rows.extend(new_rows)
                        writer.append(new_rows)
                        tracker.log(new_rows)
                        bar.set_postfix(postfix(new_rows), refresh=False)
                done = epoch + 1
                if log and done < cfg.epochs and rule.metric is not None and stop_rule_met(rows, len(seeds), rule):
                    checkpoint(done)
                    reason = f"{rule.metric} >= {rule.threshold} on {rule.patience} consecutive logged epochs"
                    print(f"stopped at epoch {done}: {reason}", file=sys.stderr)
                    return finish("completed", done, {"reason": reason, "epoch": epoch})
                if stop.received is not None:
                    checkpoint(done)
                    print(f"interrupted at epoch {done}; rerun the same command to resume", file=sys.stderr)
                    return finish("interrupted", done)
                if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.epochs:
                    checkpoint(done)
        except BaseException:
            tracker.abort()  # a failed run still closes its tracker (e.g. finishes the wandb run)
            raise
        finally:
            bar.close()
    checkpoint(cfg.epochs)
    return finish("completed", cfg.epochs)


def uniform(values: list[str]) -> str:
    return values[0] if len(set(values)) == 1 else "mixed"


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
