"""The settings the speed benchmark times (``reproduction.bench``), shared with the late-state cache
(``reproduction.late_states``) and the per-figure estimate (``reproduction.figure_times``).

A setting is a name, the config overrides it composes from and what it is held to; a late-state
setting is also timed from the state after ``late_epochs`` epochs of training and stands for the
committed runs named in ``runs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

ADD = ["dataset=add_mod", "model=mlp"]
ADAMW_STABLEMAX = ["optimizer=adamw", "loss=stablemax", "precision=float64"]
ADAMW_SOFTMAX = ["optimizer=adamw", "loss=softmax", "precision=float32"]


@dataclass
class Setting:
    name: str
    overrides: list[str]
    target: float | None  # the largest allowed ratio to the matmul floor
    seeds: list[int] = field(default_factory=lambda: [0])
    late_epochs: int = 0  # > 0: also timed from the state after this many epochs (reproduction/late_states.py)
    runs: tuple[str, ...] = ()  # committed runs (figure/run) whose configuration a late-state setting is


SETTINGS = [
    Setting("mlp add 40% StableMax f64 AdamW", [*ADD, "dataset.train_fraction=0.4", *ADAMW_STABLEMAX], 1.6),
    Setting("mlp add 40% softmax f32 AdamW", [*ADD, "dataset.train_fraction=0.4", *ADAMW_SOFTMAX], 1.6),
    Setting("mlp add 60% softmax f32 AdamW", [*ADD, "dataset.train_fraction=0.6", *ADAMW_SOFTMAX], 1.6),
    Setting("mlp add 70% softmax f32 AdamW", [*ADD, "dataset.train_fraction=0.7", *ADAMW_SOFTMAX], 1.6),
    Setting(
        "mlp sparse parity StableMax f64 AdamW", ["dataset=sparse_parity", "model.bias=true", *ADAMW_STABLEMAX], 1.6
    ),
    Setting("mlp add 40% softmax f32 ⊥AdamW (default run)", [*ADD, "optimizer=perp_adamw"], None),
    Setting("transformer sub 40% softmax f32 AdamW", ["dataset=sub_mod", "model=transformer", *ADAMW_SOFTMAX], 2.0),
    Setting(
        "mlp add 40% StableMax f64 AdamW, 4 seeds batched",
        [*ADD, "dataset.train_fraction=0.4", *ADAMW_STABLEMAX],
        None,
        [0, 1, 2, 3],
    ),
    # the same epochs through autograd, for comparison with the C++ kernels that the settings above use on CPU
    Setting(
        "mlp add 40% StableMax f64 AdamW, autograd",
        [*ADD, "dataset.train_fraction=0.4", *ADAMW_STABLEMAX, "cpu_kernel=torch"],
        None,
    ),
    Setting(
        "mlp add 40% softmax f32 AdamW, autograd",
        [*ADD, "dataset.train_fraction=0.4", *ADAMW_SOFTMAX, "cpu_kernel=torch"],
        None,
    ),
    Setting(
        "transformer sub 40% softmax f32 AdamW, autograd",
        ["dataset=sub_mod", "model=transformer", *ADAMW_SOFTMAX, "cpu_kernel=torch"],
        None,
    ),
    Setting(
        "mlp sparse parity StableMax f64 AdamW, autograd",
        ["dataset=sparse_parity", "model.bias=true", *ADAMW_STABLEMAX, "cpu_kernel=torch"],
        None,
    ),
]
# Late-state settings: each timed from its initialization and from the state after `late_epochs`
# epochs of training (after Softmax Collapse), in alternating blocks; the state is produced on the
# C++ path where it applies and cached (reproduction/late_states.py).
FIG2_70 = ["experiment=fig2", "dataset.train_fraction=0.7"]
LATE_SETTINGS = [
    Setting(
        "fig8 baseline: add 60% softmax f64 loss AdamW",
        ["experiment=fig8"],
        None,
        late_epochs=5000,
        runs=("fig8/baseline",),
    ),
    Setting(
        "fig8 intervention: the baseline, correct-class gradients zeroed from epoch 6000",
        ["experiment=fig8", "sc_intervention_epoch=6000"],
        None,
        late_epochs=7000,
        runs=("fig8/intervention",),
    ),
    Setting(
        "fig2 add 70% softmax f32",
        [*FIG2_70, "precision=float32"],
        None,
        late_epochs=3000,
        runs=("fig2/frac0.7_float32",),
    ),
    Setting(
        "fig2 add 70% softmax f16",
        [*FIG2_70, "precision=float16"],
        None,
        late_epochs=2000,
        runs=("fig2/frac0.7_float16",),
    ),
    Setting("fig1b add 40% StableMax f64", ["experiment=fig1b"], None, late_epochs=2000, runs=("fig1/b_stablemax",)),
    Setting(
        "fig4 sparse parity StableMax f64",
        ["experiment=fig4", "dataset=sparse_parity", "model.bias=true", "optimizer.eps=1e-18"],
        None,
        late_epochs=2000,
        runs=("fig4/sparse_parity",),
    ),
    Setting(
        "study: 2-layer MLP add 40% softmax f32, AdamW lr 1e-2 weight decay 10 (subnormal weights of dead units)",
        ["experiment=study_baselines_mlp2", "optimizer.lr=0.01", "optimizer.weight_decay=10"],
        None,
        late_epochs=1000,
        runs=("study_baselines/mlp2/adamw_lr0.01_wd10.0",),
    ),
]
SEED_SWEEP = [SETTINGS[0], SETTINGS[1], SETTINGS[6]]  # Fig. 1b's MLP, the softmax MLP, the transformer
# --smoke: tiny sizes, per option of the model and the dataset a setting composes to (each option
# refuses a size it does not read)
SMOKE = {
    "model": {"mlp": ["model.width=32"], "transformer": ["model.d_model=16", "model.n_heads=2", "model.d_mlp=32"]},
    "dataset": {name: ["dataset.modulus=23"] for name in ("add_mod", "sub_mod", "mul_mod")},
}


def smoke_overrides(overrides: list[str]) -> list[str]:
    """The --smoke sizes for the config that ``overrides`` compose to: those its model and dataset read."""
    from grokking.cli import compose

    cfg = compose(overrides)
    return [*SMOKE["model"].get(cfg.model.name, []), *SMOKE["dataset"].get(cfg.dataset.name, [])]


def smoke(s: Setting) -> Setting:
    """``s`` at the --smoke sizes (the same name, so its rows keep their place)."""
    return replace(s, overrides=[*s.overrides, *smoke_overrides(s.overrides)])
