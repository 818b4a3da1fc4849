"""Fig. 10: absorbed updates. MLP, plain SGD lr 20, addition with 30 % of the pairs, float32:
as the gradient norm falls, the share of parameter entries with w - lr*g == w (absorbed update)
rises while the share of exactly-zero gradient entries stays flat."""

from __future__ import annotations

from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import mean_band, panels, save
from reproduction.results import metrics

EXP = experiment("fig10")  # one panel, one series: the run drawn


def main(results: Path, out_dir: Path) -> None:
    df = metrics(EXP.name, EXP.plot.panels[0].series[0].run, results)
    pct = df.assign(absorbed_fraction=100 * df.absorbed_fraction, zero_grad_fraction=100 * df.zero_grad_fraction)
    fig, (grad, absorbed, zero) = panels(3)
    mean_band(grad, df[df.epoch > 0], "epoch", "grad_norm", "gradient norm", "k")
    grad.set(yscale="log", ylabel="L2 norm of the full gradient", title="gradient norm")
    mean_band(absorbed, pct, "epoch", "absorbed_fraction", "absorbed updates", "#d62728")
    absorbed.set(ylabel="share of parameter entries (%)", title="absorbed updates (w − ηg ≐ w)")
    mean_band(zero, pct, "epoch", "zero_grad_fraction", "exactly-zero gradients", "#1f77b4")
    top = 1.2 * max(pct.absorbed_fraction.max(), pct.zero_grad_fraction.max())
    zero.set(ylabel="share of parameter entries (%)", title="exactly-zero gradients", ylim=(0, top))
    absorbed.set(ylim=(0, top))
    for ax in (grad, absorbed, zero):
        ax.set(xlabel="epoch (log)", xscale="log")
    save(fig, EXP.name, out_dir)
