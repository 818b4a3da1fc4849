"""Training states after Softmax Collapse, for timing late epochs (``reproduction.bench``,
``reproduction.figure_times``).

Late in a run an epoch can cost several times an early one: after Softmax Collapse the logits'
gradients span more binades than float32 holds, and arithmetic on subnormal values is slow on x86
(docs/speed.md, "Late epochs"). ``late_state`` trains a config from its initialization for a given
number of epochs (the same epochs as :class:`reproduction.bench_epoch.Epoch`, on the path
``cpu_kernel=auto`` picks) and keeps the model and optimizer state under a cache folder (git-ignored; ``.cache/late_states``
unless ``GROKKING_LATE_CACHE`` names another), with a checkpoint every 1 000 epochs, so that a
later call for the same or more epochs resumes from the newest one.

    python scripts/late_states.py [TEXT]   # produce every late state the benchmark times (whose name holds TEXT)

``scripts/late_states.py`` is its entry point.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch

from grokking.runtime import keep_freed_memory
from reproduction.bench_epoch import Epoch
from reproduction.bench_settings import LATE_SETTINGS

ROOT = Path(__file__).resolve().parents[1]
EVERY = 1000


def cache_dir() -> Path:
    return Path(os.environ.get("GROKKING_LATE_CACHE", ROOT / ".cache" / "late_states"))


def key(overrides: list[str], seeds: list[int]) -> str:
    text = json.dumps({"overrides": overrides, "seeds": seeds, "torch": torch.__version__})
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def load_state(epoch, state: dict):
    """``epoch`` (an :class:`Epoch`) with the model and optimizer state ``state``."""
    epoch.model.load_state_dict(state["model"])
    epoch.optimizer.load_state_dict(state["optimizer"])
    epoch.epoch = state.get("epoch", epoch.epoch)
    return epoch


def read_state(path: Path) -> dict | None:
    """A cached state, loaded with ``weights_only=True`` (tensors and plain values only: a crafted
    file in the cache cannot run code); None, with a one-line note, where it cannot be read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types here: UnpicklingError, RuntimeError, EOFError, ...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        print(f"note: ignoring {path}: it cannot be read as a cached state ({reason})", file=sys.stderr)
        return None
    if not isinstance(state, dict) or "model" not in state or "optimizer" not in state:
        print(f"note: ignoring {path}: it is not a cached state", file=sys.stderr)
        return None
    return state


def cached_state(overrides: list[str], epochs: int, seeds: list[int] | None = None) -> dict | None:
    """The cached state of ``overrides`` after ``epochs`` epochs, or None where it is not cached
    (or the cached file cannot be read)."""
    path = cache_dir() / key(overrides, seeds or [0]) / f"{epochs}.pt"
    return read_state(path) if path.is_file() else None


def late_state(overrides: list[str], epochs: int, seeds: list[int] | None = None, verbose: bool = True) -> dict:
    """The model and optimizer state of ``overrides`` after ``epochs`` epochs of training from the
    initialization (trained here, or loaded from the cache)."""
    seeds = seeds or [0]
    folder = cache_dir() / key(overrides, seeds)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "what.json").write_text(json.dumps({"overrides": overrides, "seeds": seeds, "torch": torch.__version__}))
    epoch = Epoch.composed(overrides, seeds)
    done = sorted(
        (int(p.stem) for p in folder.glob("*.pt") if p.stem.isdigit() and int(p.stem) <= epochs), reverse=True
    )
    start, state = 0, None
    for saved in done:  # the newest readable one
        if (state := read_state(folder / f"{saved}.pt")) is not None:
            start = saved
            load_state(epoch, state)
            epoch.epoch = start
            break
    t0 = time.perf_counter()
    for e in range(start, epochs):
        epoch()
        if (e + 1) % EVERY == 0 or e + 1 == epochs:
            state = {"model": epoch.model.state_dict(), "optimizer": epoch.optimizer.state_dict(), "epoch": e + 1}
            tmp = folder / f"{e + 1}.pt.tmp"
            torch.save(state, tmp)
            tmp.replace(folder / f"{e + 1}.pt")
            if verbose:
                print(f"  {' '.join(overrides)}: epoch {e + 1}/{epochs} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return (
        state
        if state is not None
        else {"model": epoch.model.state_dict(), "optimizer": epoch.optimizer.state_dict(), "epoch": epochs}
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    only = argv[0] if argv else ""
    keep_freed_memory()
    for s in LATE_SETTINGS:
        if only in s.name:
            late_state(s.overrides, s.late_epochs, s.seeds)


if __name__ == "__main__":
    main()
