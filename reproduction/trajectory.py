"""Fig. 7: parameter trajectories projected on their first two principal components, and the
train/test loss over that plane."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from grokking.checkpoint import SNAPSHOTS, load_checkpoint
from grokking.runs import load_metrics, load_run, run_loss


def principal_plane(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and the top two principal directions (rows of a 2 × P matrix) of the rows of ``points``."""
    mean = points.mean(0)
    _, _, v = torch.linalg.svd(points - mean, full_matrices=False)
    return mean, v[:2]


@torch.no_grad()
def loss_on_plane(
    run_dir: Path, mean: torch.Tensor, basis: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> pd.DataFrame:
    """Train and test loss of the run's model at every point mean + a·v1 + b·v2 of a grid."""
    cfg, data, model = load_run(run_dir)
    loss_fn, loss_dtype = run_loss(cfg)
    params = list(model.parameters())
    sizes = [p[0].numel() for p in params]
    rows = []
    for ai in a.tolist():
        for bi in b.tolist():
            flat = (mean + ai * basis[0] + bi * basis[1]).to(params[0].dtype)
            for p, chunk in zip(params, flat.split(sizes)):
                p.copy_(chunk.view_as(p[0]).unsqueeze(0))
            train = loss_fn(model(data.train_x), data.train_y, loss_dtype).mean().item()
            test = loss_fn(model(data.test_x), data.test_y, loss_dtype).mean().item()
            rows.append({"pc1": ai, "pc2": bi, "train_loss": train, "test_loss": test})
    return pd.DataFrame(rows)


def export_trajectories(run_dirs: dict[str, Path], out_dir: Path, grid: int = 25, margin: float = 0.25) -> None:
    """Write trajectories.csv (run, epoch, pc1, pc2, losses) and loss_grid.csv for the joint plane."""
    trajectories = {}
    for name, run_dir in run_dirs.items():
        snap = load_checkpoint(run_dir / SNAPSHOTS)
        epochs = [e for e, _ in snap["snapshots"]]
        trajectories[name] = (epochs, torch.stack([s[0] for _, s in snap["snapshots"]]).double())
    mean, basis = principal_plane(torch.cat([t for _, t in trajectories.values()]))
    frames = []
    for name, (epochs, points) in trajectories.items():
        coords = (points - mean) @ basis.T
        metrics = load_metrics(run_dirs[name]).set_index("epoch")
        frame = pd.DataFrame({"run": name, "epoch": epochs, "pc1": coords[:, 0], "pc2": coords[:, 1]})
        frame["train_loss"] = metrics["train_loss"].reindex(epochs).to_numpy()
        frame["test_loss"] = metrics["test_loss"].reindex(epochs).to_numpy()
        frames.append(frame)
    traj = pd.concat(frames, ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    traj.to_csv(out_dir / "trajectories.csv", index=False)
    span = lambda c: (traj[c].min(), traj[c].max())  # noqa: E731
    axes = []
    for c in ("pc1", "pc2"):
        lo, hi = span(c)
        pad = margin * (hi - lo)
        axes.append(torch.linspace(lo - pad, hi + pad, grid, dtype=torch.float64))
    first = next(iter(run_dirs.values()))
    loss_on_plane(first, mean, basis, *axes).to_csv(out_dir / "loss_grid.csv", index=False)
