"""The training step and the AdamW update as C++ kernels on CPU (``cpu_kernel``), compiled on first use.

``mlp_step.cpp`` computes the forward pass, the softmax or StableMax cross-entropy and every
parameter gradient of the MLP in one call, cutting the batch into chunks that stay in the cores'
caches (see the file's header). ``transformer_step.cpp`` does the same for the per-sample part of
the one-layer transformer; its per-token tables stay in autograd. Both compute what
:class:`grokking.step.TrainStep` computes through autograd, with the same formulas and dtypes; only
the order of the sums over samples differs (tests/test_native.py compares them). What they compute
is declared once, in :data:`KERNELS` (model, losses, dtypes and every setting a kernel computes at
a value other than its default); :func:`unsupported` reads it, and it alone decides whether a run
takes the C++ step: anything outside it (a new option or parameter included, until a kernel claims
it) takes the autograd path, with a one-line notice under ``cpu_kernel=auto``. ``adamw.cpp`` is AdamW's update (:class:`grokking.native.adamw.NativeAdamW`) for every
AdamW run on CPU: the dtype's own arithmetic, also at full speed where the moments are subnormal
(tests/test_native_adamw.py).

``cpu_kernel=auto`` (default) uses the kernels wherever they apply and a C++ compiler can build
them, ``native`` insists on the training step's (a config error where it cannot run), ``torch`` never
uses them. The build
(≈ 30 s, once per machine, torch version and source change) goes to ``~/.cache/grokking/native``
(``GROKKING_NATIVE_DIR`` overrides it).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from grokking.backward import unscale_grads
from grokking.config import TrainConfig

KERNEL_CHOICES = ("auto", "native", "torch")
LOSS_KINDS = {"softmax": 0, "stablemax": 1, "zloss": 0}  # the losses (grokking.losses.LOSSES) the kernels compute
# zloss is the softmax row with its z-loss term (the kernels' z_coef argument; 0 for the others)
INTERVENE = 2  # added to a loss kind: the SC intervention (no gradient through the correct-class logit)
HERE = Path(__file__).parent
SOURCES = [HERE / name for name in ("bindings.cpp", "mlp_step.cpp", "transformer_step.cpp", "adamw.cpp")]
HEADERS = [HERE / "common.h"]
OWNER = "build.owner"  # held (flock) by the process that builds: the kernel releases it when that process dies
ISA_FLAGS = {  # vector width of the loss loops; the matmuls are the BLAS library's own
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2"],
}


class NativeUnavailable(RuntimeError):
    """The kernels cannot be built or loaded here; the message says why in one line."""


def step_settings(cfg: TrainConfig) -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, value, default) of every setting the training step reads: the model's and the
    loss's option and parameters, precision, and the SC intervention. (The dataset only supplies the
    inputs and the optimizer steps after; neither enters the step.)"""
    from grokking.config import PRECISION
    from grokking.losses import LOSSES
    from grokking.models import MODELS

    for registry in (MODELS, LOSSES):
        node = getattr(cfg, registry.group)
        name = getattr(node, registry.selector)
        yield registry.key, name, None
        for p in registry.reads(name):
            yield f"{registry.group}.{p.name}", getattr(node, p.name), p.default
    for p in PRECISION:
        yield f"precision.{p.name}", getattr(cfg.precision, p.name), p.default
    yield "sc_intervention_epoch", cfg.sc_intervention_epoch, None


def unsupported(cfg: TrainConfig) -> str | None:
    """Why the C++ training step cannot run this config (one line naming the setting), or None when
    it can: the one place that decides it, from :data:`KERNELS`."""
    if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available()):
        return f"device={cfg.device} runs on CUDA (the kernels are CPU only)"
    kernel = KERNELS.get(cfg.model.name)
    if kernel is None:
        return f"model={cfg.model.name} (only {' or '.join(f'model={m}' for m in KERNELS)})"
    for key, value, default in step_settings(cfg):
        shown = key.removesuffix(".name")
        if key not in kernel.implements:
            if value != default:
                return f"{shown}={value} (the kernel implements only {shown}={default})"
        elif (values := kernel.implements[key]) is not ANY and value not in values:
            return f"{shown}={value} (only {' or '.join(f'{shown}={v}' for v in values)})"
    return None


def sources_digest(paths: list[Path] | None = None) -> str:
    """The digest of every kernel source and header (names and contents)."""
    h = hashlib.sha1()
    for p in paths or SOURCES + HEADERS:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def build_dir(digest: str | None = None) -> Path:
    """Where the kernels are built: keyed by torch's version, the CPU's capability and the sources'
    digest, not by the checkout's path, so checkouts with the same sources share one build and
    checkouts with different sources never rebuild each other's (``GROKKING_NATIVE_DIR`` moves the
    root)."""
    root = Path(os.environ.get("GROKKING_NATIVE_DIR", Path.home() / ".cache" / "grokking" / "native"))
    version = torch.__version__.replace("+", "_")
    capability = torch.backends.cpu.get_cpu_capability().lower()
    return root / f"torch{version}-{capability}-{digest or sources_digest()}"


def staged_sources(directory: Path) -> list[Path]:
    """Copies of the sources and headers inside the build directory: the build files name these
    paths, which are the same from every checkout, so a second checkout finds the build up to date."""
    staged = directory / "src"
    staged.mkdir(parents=True, exist_ok=True)
    for p in SOURCES + HEADERS:
        copy = staged / p.name
        if not copy.is_file() or copy.read_bytes() != p.read_bytes():
            tmp = copy.with_suffix(copy.suffix + ".tmp")
            tmp.write_bytes(p.read_bytes())
            os.replace(tmp, copy)
    return [staged / p.name for p in SOURCES]


def load() -> ModuleType:
    """The compiled kernel module, built on the first call of this process where needed; raises
    :class:`NativeUnavailable` (the same one on every call of the process) where it cannot be."""
    module = build()
    if isinstance(module, NativeUnavailable):
        raise module
    return module


@functools.cache
def build() -> ModuleType | NativeUnavailable:
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return NativeUnavailable(f"no C++ compiler ({compiler}) on PATH")
    from torch.utils import cpp_extension

    here = str(Path(sys.executable).parent)  # a virtual environment's ninja, also when it is not activated
    if shutil.which("ninja") is None and shutil.which("ninja", path=here):
        os.environ["PATH"] = here + os.pathsep + os.environ.get("PATH", "")
    try:
        cpp_extension.verify_ninja_availability()
    except RuntimeError:
        return NativeUnavailable("the ninja build tool is missing (pip install ninja)")
    capability = torch.backends.cpu.get_cpu_capability()
    digest = sources_digest()
    directory = build_dir(digest)
    directory.mkdir(parents=True, exist_ok=True)
    sources = staged_sources(directory)
    if not any(directory.glob("*.so")):
        print(f"building the C++ training kernels in {directory} (once, ≈ 30–40 s)", file=sys.stderr)
    try:
        with build_owner(directory), ninja_dies_with_this_process():
            return cpp_extension.load(
                name=f"grokking_native_{capability.lower()}",
                sources=[str(p) for p in sources],
                # the digest of every source and header: a changed header rebuilds too
                extra_cflags=[
                    "-O3",
                    "-ffp-contract=off",
                    "-fopenmp",
                    f"-DGROKKING_NATIVE_SOURCES={digest}",
                    *ISA_FLAGS.get(capability, []),
                ],
                extra_ldflags=["-fopenmp"],
                build_directory=str(directory),
                verbose=False,
            )
    except Exception as e:  # a compiler or linker error: its first diagnostic says the most
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        errors = [line for line in lines if ": error:" in line or "undefined reference" in line] or lines
        return NativeUnavailable(f"building grokking/native failed: {errors[0] if errors else type(e).__name__}")


@contextlib.contextmanager
def build_owner(directory: Path):
    """Hold ``build.owner`` (an flock, which the kernel releases when its holder dies) while building.
    torch's own build lock (``lock``) is a plain file that a killed build leaves behind, and every
    later build would wait on it for ever; a builder holding the owner lock knows that any such file
    was left by a build that died, and takes it over with a one-line note."""
    with open(directory / OWNER, "a+") as owner:
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner.seek(0)
            who = f"process {pid}" if (pid := owner.read().strip()) else "another process"
            print(f"waiting for {who}, which is building the C++ kernels in {directory}", file=sys.stderr)
            fcntl.flock(owner, fcntl.LOCK_EX)
        owner.seek(0)
        previous = owner.read().strip()
        owner.seek(0)
        owner.truncate()
        owner.write(str(os.getpid()))
        owner.flush()
        lock = directory / "lock"
        if lock.exists():
            gone = f"process {previous}" if previous else "a build"
            print(f"taking over the build lock in {directory}: {gone}, which left it, is gone", file=sys.stderr)
            lock.unlink(missing_ok=True)
        try:
            yield
        finally:
            fcntl.flock(owner, fcntl.LOCK_UN)


def die_with_parent() -> None:
    """In a child process: receive SIGTERM when the parent dies, even by kill -9 (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def ninja_dies_with_this_process():
    """Run torch's ninja build so that it never outlives this process. ninja runs each compiler in a
    process group of its own, so a signal to this process's group does not reach them; ninja stops
    them itself when it receives SIGTERM or SIGINT. So ninja gets SIGTERM when this process dies
    (killed, even by kill -9), and when this process is interrupted (Ctrl-C, SIGTERM turned into an
    exception) ninja gets SIGTERM and is waited for, instead of the SIGKILL of ``subprocess.run``."""
    real = subprocess.run

    def run(command, *args, check: bool = False, timeout: float | None = None, input=None, **kwargs):
        if not (isinstance(command, list) and command and command[0] == "ninja"):
            return real(command, *args, check=check, timeout=timeout, input=input, **kwargs)
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        with subprocess.Popen(command, *args, preexec_fn=die_with_parent, **kwargs) as process:
            try:
                output, _ = process.communicate(input, timeout=timeout)
            except BaseException:
                process.send_signal(signal.SIGTERM)  # ninja interrupts its compilers, then exits
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                raise
        if check and process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command, output=output)
        return subprocess.CompletedProcess(command, process.returncode, output, None)

    subprocess.run = run
    try:
        yield
    finally:
        subprocess.run = real


class NativeStep:
    """A training step through a kernel: called, it returns (logits, per-sample losses, summed
    objective) like :class:`grokking.step.TrainStep` and leaves every parameter gradient in
    ``.grad``. Replicas are stepped one after the other. The kernels backpropagate at the backward
    scale 2^k (``precision.backward_log2_scale``) and write the weights' gradients, unscaled, into
    their ``.grad`` tensors, which stay allocated from epoch to epoch."""

    samples_per_chunk = 256  # a chunk's activations fit in one core's L2 cache

    def __init__(self, module: ModuleType, cfg: TrainConfig, model, data):
        self.module, self.model, self.data = module, model, data
        self.loss_kind = LOSS_KINDS[cfg.loss.name]
        self.z_coef = float(cfg.loss.z_coef) if cfg.loss.name == "zloss" else 0.0
        self.output_scale = float(cfg.model.output_scale)
        self.loss_dtype = getattr(torch, cfg.precision.loss_dtype)
        self.log2_scale = cfg.precision.backward_log2_scale
        self.grad_scale = 2.0**self.log2_scale
        self.chunk = chunk_size(len(data.train_y), self.samples_per_chunk)
        self.replicas = next(model.parameters()).shape[0]
        self.outputs: list[torch.Tensor] = []  # the .grad tensors the kernel writes (see grad_outputs)
        self.output_views: list[list[torch.Tensor]] = []

    def __call__(self, intervene: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, per_sample = self.step(self.loss_kind | (INTERVENE if intervene else 0))
        return logits, per_sample, per_sample.mean(-1).sum()

    def step(self, kind: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and per-sample losses of every replica; the gradients left in ``.grad``. ``kind``:
        the loss kind, plus :data:`INTERVENE` to zero the gradient through the correct class."""
        raise NotImplementedError

    def grad_outputs(self, params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Per replica, the views of ``params``' ``.grad`` that the kernel writes. A ``.grad`` that is
        missing or was replaced (an autograd epoch sets new ones) is allocated anew."""
        grads = [p.grad for p in params]
        if len(grads) != len(self.outputs) or any(g is not o for g, o in zip(grads, self.outputs)):
            for p in params:
                if p.grad is None or not p.grad.is_contiguous() or p.grad.shape != p.shape:
                    p.grad = torch.empty_like(p, memory_format=torch.contiguous_format)
            self.outputs = [p.grad for p in params]
            self.output_views = [[g[r] for g in self.outputs] for r in range(self.replicas)]
        return self.output_views


class NativeMLPStep(NativeStep):
    """One training step of an :class:`grokking.models.MLP` on CPU through ``mlp_step``."""

    def __init__(self, module: ModuleType, cfg: TrainConfig, model, data):
        super().__init__(module, cfg, model, data)
        self.tokens = model.vocab is not None
        self.x = model.rows(data.train_x) if self.tokens else data.train_x.contiguous()
        self.params = [*model.weights, *(model.biases if model.biases is not None else [])]
        layers = len(model.weights)
        # views of the parameters (updated in place by the optimizer), per replica
        self.weights = [[w[r].detach() for w in self.params[:layers]] for r in range(self.replicas)]
        self.biases = [[b[r].detach() for b in self.params[layers:]] for r in range(self.replicas)]

    def step(self, kind: int) -> tuple[torch.Tensor, torch.Tensor]:
        grads, y = self.grad_outputs(self.params), self.data.train_y
        outs = [
            self.module.mlp_step(
                self.weights[r], self.biases[r], self.x, self.tokens, y,
                kind, self.loss_dtype, self.grad_scale, self.chunk, grads[r], self.z_coef, self.output_scale,
            )
            for r in range(self.replicas)
        ]  # fmt: skip
        return stack([o[0] for o in outs]), stack([o[1] for o in outs])


class NativeTransformerStep(NativeStep):
    """One training step of a :class:`grokking.models.Transformer` on CPU: its tables (``tables()``)
    through autograd, the per-sample part through ``transformer_step``, whose table gradients then
    flow back through autograd (at the backward scale: the kernel's gradients are the upstream ones;
    the gradients they reach are unscaled after it)."""

    samples_per_chunk = 128  # its MLP block's activations are 512 wide

    def __init__(self, module: ModuleType, cfg: TrainConfig, model, data):
        super().__init__(module, cfg, model, data)
        self.params = [model.W_O, model.W_in, model.W_out, model.unembed]
        self.table_params = [p for p in model.parameters() if all(p is not q for q in self.params)]
        d = model.W_O.shape[-1]
        # views of the weights (updated in place by the optimizer), per replica; W_O as (h·e, d)
        weights = [model.W_O.view(self.replicas, -1, d), model.W_in, model.W_out, model.unembed]
        self.weights = [[w[r].detach() for w in weights] for r in range(self.replicas)]

    def step(self, kind: int) -> tuple[torch.Tensor, torch.Tensor]:
        model, data = self.model, self.data
        for p in self.table_params:
            p.grad = None  # autograd accumulates into them below
        grads = self.grad_outputs(self.params)
        rows_ab, values, scores, c = model.tables(data.train_x)
        rows, d = rows_ab.view(-1, 2), c.shape[-1]
        outs = [
            self.module.transformer_step(
                values[r].detach(), scores[r].detach(), c[r].detach().view(d), *self.weights[r],
                rows, data.train_y, kind, self.loss_dtype, self.grad_scale, self.chunk, grads[r], self.z_coef, self.output_scale,
            )
            for r in range(self.replicas)
        ]  # fmt: skip
        upstream = [stack([o[2 + i] for o in outs]).view_as(t) for i, t in enumerate((values, scores, c))]
        torch.autograd.backward([values, scores, c], upstream)
        unscale_grads(self.table_params, self.log2_scale)
        return stack([o[0] for o in outs]), stack([o[1] for o in outs])


ANY = None  # KERNELS: every value the config allows


@dataclass(frozen=True)
class Kernel:
    """What one C++ training step computes. ``implements`` maps each setting it computes at other
    values than its default to those values (:data:`ANY`: every valid one); ``model.name`` and
    ``loss.name`` list the options it computes. Every other setting of the step
    (:func:`step_settings`: a parameter added later included) must be at its default."""

    step: type[NativeStep]
    implements: dict[str, tuple | None]


COMMON = {  # what both kernels compute
    "loss.name": tuple(LOSS_KINDS),
    "loss.z_coef": ANY,  # loss=zloss's weight
    "precision.loss_dtype": ("float32", "float64"),
    "precision.model_dtype": ANY,
    "precision.backward_log2_scale": ANY,
    "sc_intervention_epoch": ANY,  # the INTERVENE flag
    "model.init_scale": ANY,  # the initialization only
    "model.output_scale": ANY,  # the output's factor (Kumar et al. 2024's α)
}
KERNELS: dict[str, Kernel] = {  # by model name: the capability description, and the only one
    "mlp": Kernel(
        NativeMLPStep, {"model.name": ("mlp",), **COMMON, "model.depth": ANY, "model.width": ANY, "model.bias": ANY}
    ),
    "transformer": Kernel(
        NativeTransformerStep,
        {"model.name": ("transformer",), **COMMON, "model.d_model": ANY, "model.n_heads": ANY, "model.d_mlp": ANY},
    ),
}
STEPS: dict[str, type[NativeStep]] = {name: kernel.step for name, kernel in KERNELS.items()}


def chunk_size(n: int, chunk: int) -> int:
    """``chunk``, or fewer samples where that leaves a thread without a chunk (the kernels round it
    up to a multiple of 16, so that every chunk's rows start on a 64-byte boundary)."""
    return min(chunk, max(1, math.ceil(n / torch.get_num_threads())))


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``, without a copy for a single tensor."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)
