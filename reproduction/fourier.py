"""Fig. 12: Fourier spectrum of the first-layer weights of a modular-arithmetic MLP.

The first layer's weight rows for operand a (and b) form a p × width matrix indexed by the integer;
its DFT along the integer axis gives, for each frequency k, the power summed over hidden units.
Grokked networks concentrate the power in a few frequencies; memorizing ones spread it out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from grokking.runs import load_run


def operand_spectra(first_layer: torch.Tensor, p: int) -> dict[str, torch.Tensor]:
    """Normalized power per frequency 0..p//2 for each operand, from a (2p, width) weight."""
    out = {}
    for operand, rows in (("a", first_layer[:p]), ("b", first_layer[p : 2 * p])):
        power = torch.fft.rfft(rows.double(), dim=0).abs().pow(2).sum(1)
        out[operand] = power / power.sum()
    return out


def top_k_share(power: torch.Tensor, k: int = 10) -> float:
    """Share of the non-constant power held by the k strongest frequencies."""
    nonconstant = power[1:] / power[1:].sum()
    return nonconstant.sort(descending=True).values[:k].sum().item()


def export_spectra(run_dirs: dict[str, Path], out_dir: Path) -> None:
    """Write spectra.csv (run, operand, frequency, power) and sparsity.csv (top-10 share)."""
    rows, sparsity = [], []
    for name, run_dir in run_dirs.items():
        cfg, _, model = load_run(run_dir)
        weight = model.weights[0][0].detach()
        for operand, power in operand_spectra(weight, cfg.dataset.modulus).items():
            rows += [
                {"run": name, "operand": operand, "frequency": k, "power": v} for k, v in enumerate(power.tolist())
            ]
            sparsity.append({"run": name, "operand": operand, "top10_share": top_k_share(power)})
    out_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out_dir / "spectra.csv", index=False)
    pd.DataFrame(sparsity).to_csv(out_dir / "sparsity.csv", index=False)
