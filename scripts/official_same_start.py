"""Train the official code and ours side by side from identical weights on the identical training set,
full batch, and print both SC fractions, losses and weight norms every few steps.

    python scripts/official_same_start.py --steps 3300                # Fig. 2, 60 %, float32 loss
    python scripts/official_same_start.py --steps 3300 --official-loss ours   # its model and AdamW, our loss
    python scripts/official_same_start.py --fraction 0.7 --dtype float64 --steps 7000
    python scripts/official_same_start.py --fraction 0.4 --dtype float16 --eps 1e-30 --steps 4500 --log2-scale 0

The setting is a Fig. 2 run: softmax CE in ``--dtype``, AdamW lr 5e-4 (``--eps``: Adam's epsilon, 1e-30
in the 40 % runs, else both codes' default 1e-25), ``--fraction`` of the pairs. ``--log2-scale`` sets our
``precision.backward_log2_scale`` (0: a plain backward pass, as the official code's).
The official side is built by :func:`reproduction.official_snapshot.official_run`, as for the
same-computation tests (its model, loss and optimizer, imported unmodified from the snapshot); ours as the trainer builds
it (``cpu_kernel=torch`` unless ``--kernel`` says otherwise). ``--official-loss ours`` swaps the
official loss for ours (``grokking.fused``), so a divergence can be traced to the loss or away from it.
SC is counted on both sides by one rule: rows whose Σ exp(z - max z) is exactly 1 in ``--dtype``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grokking.cli import compose  # noqa: E402
from grokking.data import build_dataset  # noqa: E402
from grokking.errors import ConfigError  # noqa: E402
from grokking.fused import softmax_cross_entropy  # noqa: E402
from grokking.metrics import softmax_collapse_fraction  # noqa: E402
from grokking.models import build_model  # noqa: E402
from grokking.optim import build_optimizer  # noqa: E402
from grokking.step import TrainStep, native_module  # noqa: E402
from grokking.train import git_commit, to_config  # noqa: E402
from grokking.validation import validate  # noqa: E402
from reproduction.official_snapshot import FIXED, official_run, snapshot_dirs  # noqa: E402

DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}


def norm(weights) -> float:
    return float(sum(w.detach().to(torch.float64).pow(2).sum() for w in weights) ** 0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3300, help="full-batch steps (default 3300)")
    parser.add_argument("--every", type=int, default=50, help="print every N steps (default 50)")
    parser.add_argument("--fraction", type=float, default=0.6, help="train fraction (default 0.6)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="loss dtype (default float32)")
    parser.add_argument("--kernel", choices=["torch", "native", "auto"], default="torch", help="our cpu_kernel")
    parser.add_argument("--eps", type=float, default=1e-25, help="Adam's epsilon on both sides (default 1e-25)")
    parser.add_argument("--log2-scale", type=int, default=40, help="our precision.backward_log2_scale (default 40)")
    parser.add_argument(
        "--official-loss", choices=["official", "ours"], default="official", help="the loss the official side trains"
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.every < 1:
        print(f"error: --steps {args.steps} and --every {args.every} must be ≥ 1", file=sys.stderr)
        return 2
    found, why = snapshot_dirs()
    if FIXED not in found:
        print(f"error: {why or f'{FIXED} is not among the snapshots found'}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    dtype = DTYPES[args.dtype]
    overrides = ["loss=softmax", f"precision={args.dtype}", "optimizer=adamw", "optimizer.lr=0.0005"]
    overrides += [f"dataset.train_fraction={args.fraction}", f"optimizer.eps={args.eps}"]
    overrides.append(f"precision.backward_log2_scale={args.log2_scale}")
    flags = ["--lr", "0.0005", "--train_fraction", str(args.fraction), "--cross_entropy_dtype", args.dtype]
    flags += ["--adam_epsilon", repr(args.eps)]
    cfg, _ = to_config(compose(["device=cpu", f"cpu_kernel={args.kernel}", *overrides]))
    try:
        validate(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data = build_dataset(cfg.dataset).to(torch.device("cpu"), torch.float32)

    official = official_run(FIXED, flags, data.train_idx)
    if args.official_loss == "ours":
        official.loss_fn = lambda z, t: softmax_cross_entropy(z, t, dtype).mean()

    ours = build_model(cfg.model, data, [cfg.seed]).to(torch.device("cpu"), torch.float32)
    with torch.no_grad():
        for w, w0 in zip(ours.weights, official.model.layers, strict=True):
            w[0].copy_(w0.weight.T)
    our_optimizer = build_optimizer(cfg.optimizer, list(ours.parameters()), native_module(cfg.cpu_kernel))
    step = TrainStep(cfg, ours, data, our_optimizer)

    print(f"# this repository at {git_commit() or 'an unknown commit'}, torch {torch.__version__}, CPU, one thread")
    print(
        f"step  official: SC  loss  |w|   ours: SC  loss  |w|   (loss {args.dtype}, eps {args.eps:g}, "
        f"our backward scale 2^{args.log2_scale}, official loss: {args.official_loss})"
    )
    start = time.time()
    for s in range(1, args.steps + 1):
        out, loss = official.step()
        logits, per_sample, _ = step()
        our_optimizer.step()
        if s % args.every == 0:
            print(
                f"{s:5d}  {float(softmax_collapse_fraction(out, dtype)):.3f} {loss.item():.3e} {norm(layer.weight for layer in official.model.layers):7.2f}"
                f"   {float(softmax_collapse_fraction(logits[0], dtype)):.3f} {per_sample.mean().item():.3e} {norm(w[0] for w in ours.weights):7.2f}"
                f"   {time.time() - start:.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
