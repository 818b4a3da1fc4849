"""The C++ training step of the MLP (``cpu_kernel``) computes what autograd computes."""

import shutil

import pytest
import torch

import grokking.native as native
from grokking.cli import compose
from grokking.data import build_dataset
from grokking.losses import DTYPES
from grokking.models import build_model
from grokking.optim import build_optimizer
from grokking.step import TrainStep
from grokking.train import to_config
from grokking.validation import ConfigError, validate

SIZES = {"mlp": ["model.width=32"], "transformer": ["model.d_model=16", "model.n_heads=2", "model.d_mlp=32"]}


def small(overrides=()) -> list[str]:
    """A small run of the model that ``overrides`` choose (each model's own size keys: a key of the
    other model is refused)."""
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "mlp")
    dataset = next((o.split("=", 1)[1] for o in overrides if o.startswith("dataset=")), "add_mod")
    return ["device=cpu", *(["dataset.modulus=23"] if dataset.endswith("_mod") else []), *SIZES[model]]


SMALL = small()


@pytest.fixture(scope="module", autouse=True)
def kernel():
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler: the kernel cannot be built here (autograd is used)")
    return native.load()  # with a compiler present, a failing build fails the tests


def make_step(overrides, kernel="native", seeds=(0,)):
    cfg, _ = to_config(compose([*small(overrides), *overrides, f"cpu_kernel={kernel}"]))
    validate(cfg)
    dtype = DTYPES[cfg.precision.model_dtype]
    data = build_dataset(cfg.dataset).to("cpu", dtype)
    model = build_model(cfg.model, data, list(seeds)).to("cpu", dtype)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    return TrainStep(cfg, model, data, optimizer)


def assert_same_step(a: TrainStep, b: TrainStep, rtol: float) -> None:
    """Logits, losses and gradients equal up to rounding (the order of sums; for the transformer
    also its attention's exponentials and products, rounded alike but not always identically)."""
    la, pa, loss_a = a()
    lb, pb, loss_b = b()
    torch.testing.assert_close(la, lb, rtol=rtol, atol=rtol * lb.abs().max().item())
    torch.testing.assert_close(pa, pb, rtol=rtol, atol=rtol * pb.abs().max().item())
    torch.testing.assert_close(loss_a, loss_b, rtol=rtol, atol=0)
    for p, q in zip(a.params, b.params):
        assert p.grad.shape == q.grad.shape and p.grad.dtype == q.grad.dtype
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=rtol * q.grad.abs().max().item())


CASES = [
    ["loss=softmax", "precision=float32"],
    ["loss=stablemax", "precision=float64"],  # loss in float64, model in float32
    ["loss=softmax", "precision=float64", "precision.model_dtype=float64"],
    ["loss=stablemax", "precision=float32", "precision.model_dtype=float64"],  # loss below the model's dtype
    ["loss=softmax", "model.bias=true", "model.depth=3"],
    ["loss=stablemax", "model.depth=1", "precision.backward_log2_scale=0"],
    ["dataset=sparse_parity", "dataset.n_samples=300", "loss=stablemax", "model.bias=true"],  # dense inputs
    ["dataset=add_mod_binary", "loss=softmax"],
    ["model=transformer", "dataset=sub_mod", "loss=softmax", "precision=float32"],
    ["model=transformer", "loss=stablemax", "precision=float64"],
    ["model=transformer", "loss=softmax", "precision=float64", "precision.model_dtype=float64"],
    ["model=transformer", "loss=stablemax", "precision.backward_log2_scale=0"],
    ["loss=zloss", "loss.z_coef=0.01", "precision=float32"],  # the z-loss term in the softmax row
    ["loss=zloss", "loss.z_coef=0.5", "precision=float64", "precision.model_dtype=float64"],
    ["model=transformer", "dataset=sub_mod", "loss=zloss", "loss.z_coef=0.01"],
    ["model.output_scale=4", "precision=float32"],  # the output × α, its gradient × α
    ["model.output_scale=0.3", "loss=stablemax", "precision=float64", "model.bias=true"],
    ["model.output_scale=0.25", "loss=zloss", "loss.z_coef=0.01", "precision=float64", "precision.model_dtype=float64"],
    ["model=transformer", "dataset=sub_mod", "model.output_scale=4"],
]


@pytest.mark.parametrize("overrides", CASES, ids=lambda o: " ".join(o))
def test_one_step_matches_autograd(overrides):
    native_step, torch_step = make_step(overrides), make_step(overrides, kernel="torch")
    assert native_step.native is not None and torch_step.native is None
    f64 = "precision.model_dtype=float64" in overrides and "precision=float64" in overrides
    assert_same_step(native_step, torch_step, rtol=1e-12 if f64 else 2e-6)


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_replicas_are_stepped_as_their_single_seed_runs(model):
    batched = make_step([f"model={model}", "loss=stablemax", "precision=float64"], seeds=(0, 1, 2))
    logits, per_sample, _ = batched()
    grads = [p.grad.clone() for p in batched.params]
    single = make_step([f"model={model}", "loss=stablemax", "precision=float64"], seeds=(1,))
    l1, p1, _ = single()
    assert torch.equal(logits[1], l1[0]) and torch.equal(per_sample[1], p1[0])
    for g, p in zip(grads, single.params):
        assert torch.equal(g[1], p.grad[0])  # each replica is one call of the kernel


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_two_threads_match_one_and_repeat_exactly(model):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        step = make_step([f"model={model}", "loss=softmax"])
        step()
        first = [p.grad.clone() for p in step.params]
        step()
        assert all(torch.equal(a, p.grad) for a, p in zip(first, step.params))  # deterministic
    finally:
        torch.set_num_threads(before)
    reference = make_step([f"model={model}", "loss=softmax"], kernel="torch")
    reference()
    for a, p in zip(first, reference.params):
        torch.testing.assert_close(a, p.grad, rtol=0, atol=2e-6 * p.grad.abs().max().item())


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_gradients_agree_along_a_training_trajectory(model):
    """Autograd trains; at every step the kernel, given the same weights, gives the same gradients."""
    overrides = [f"model={model}", "loss=stablemax", "precision=float64", "optimizer=adamw", "optimizer.lr=0.01"]
    ours, reference = make_step(overrides), make_step(overrides, kernel="torch")
    for _ in range(40):
        with torch.no_grad():
            for p, q in zip(ours.params, reference.params):
                p.copy_(q)
        assert_same_step(ours, reference, rtol=1e-5)
        reference.optimizer.step()


INTERVENTION_CASES = [
    ["loss=softmax", "precision=float32"],
    ["loss=stablemax", "precision=float64"],
    ["loss=softmax", "precision=float64", "precision.model_dtype=float64"],
    ["model=transformer", "loss=softmax", "precision=float32"],
    ["model=transformer", "loss=stablemax", "precision=float64", "precision.model_dtype=float64"],
]


@pytest.mark.parametrize("overrides", INTERVENTION_CASES, ids=lambda o: " ".join(o))
def test_intervention_epochs_match_autograd_on_the_kernel(overrides):
    """Fig. 8's intervention on the C++ step: no gradient through z_y, the rest as autograd's hook gives."""
    overrides = [*overrides, "sc_intervention_epoch=0"]
    native_step, torch_step = make_step(overrides), make_step(overrides, kernel="torch")
    assert native_step.native is not None and torch_step.native is None
    f64 = "precision.model_dtype=float64" in overrides
    _, pa, _ = native_step(intervene=True)
    _, pb, _ = torch_step(intervene=True)
    tol = 1e-12 if f64 else 2e-6
    torch.testing.assert_close(pa, pb, rtol=tol, atol=0)  # the loss itself is not touched
    for p, q in zip(native_step.params, torch_step.params):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=tol * q.grad.abs().max().item())
    plain = make_step(overrides)
    plain(intervene=False)  # the same step without it differs
    assert any(not torch.allclose(p.grad, q.grad) for p, q in zip(plain.params, native_step.params))


@pytest.mark.parametrize(
    "overrides",
    [["loss=taylor"], ["loss.temperature=2"], ["loss.label_smoothing=0.1"], ["loss.logit_norm_penalty=0.1"],
     ["precision=float16"], ["precision=bfloat16"], ["model=transformer", "loss=taylor"]],
)  # fmt: skip
def test_auto_falls_back_to_autograd_where_the_kernel_does_not_apply(overrides):
    assert make_step(overrides, kernel="auto").native is None
    with pytest.raises(ConfigError, match="cpu_kernel=native cannot run .*choose one of: cpu_kernel=auto"):
        make_step(overrides, kernel="native")


def test_bad_choice_and_failed_build_are_one_line_errors(monkeypatch, capsys):
    with pytest.raises(ConfigError, match="cpu_kernel=fast is not valid; choose one of: auto, native, torch"):
        validate(to_config(compose([*SMALL, "cpu_kernel=fast"]))[0])
    monkeypatch.setattr(native, "build", lambda: native.NativeUnavailable("no C++ compiler (c++) on PATH"))
    assert make_step([], kernel="auto").native is None
    assert (
        "cpu_kernel=auto: using autograd and torch's optimizers (no C++ compiler (c++) on PATH)"
        in capsys.readouterr().err
    )
    with pytest.raises(ConfigError, match=r"cpu_kernel=native cannot run: no C\+\+ compiler"):
        make_step([], kernel="native")


def test_a_run_can_switch_kernels_on_resume(run):
    summary, out = run(["epochs=6", "checkpoint_every=3", "cpu_kernel=native", "dataset.modulus=23"])
    assert summary["status"] == "completed" and summary["training_step"] == "native"
    (out / "summary.json").unlink()  # as if interrupted after the checkpoint at epoch 3
    summary, _ = run(["epochs=8", "checkpoint_every=3", "cpu_kernel=torch", "dataset.modulus=23"], out)
    assert summary["status"] == "completed" and summary["epoch"] == 8 and summary["training_step"] == "mixed"
    assert [(s["from_epoch"], s["training_step"]) for s in summary["stretches"]] == [(0, "native"), (6, "torch")]


def test_results_do_not_depend_on_where_the_inputs_lie_in_memory(kernel):
    """MKL's results may depend on input alignment; the kernel realigns what is not 64-byte aligned."""
    step = make_step(["loss=softmax"])
    weights = [w[0].detach() for w in step.model.weights]
    args = (step.model.rows(step.data.train_x), True, step.data.train_y, 0, torch.float32, 2.0**40, 64)
    shifted = [torch.empty(w.numel() + 1)[1:].view_as(w).copy_(w) for w in weights]  # 4 bytes off
    assert all(w.data_ptr() % 64 for w in shifted)
    outputs = [[torch.empty_like(w) for w in weights] for _ in range(2)]
    reference = kernel.mlp_step(weights, [], *args, outputs[0])
    moved = kernel.mlp_step(shifted, [], *args, outputs[1])
    assert all(torch.equal(a, b) for a, b in zip(reference + outputs[0], moved + outputs[1]))


def test_a_model_without_a_kernel_trains_through_autograd():
    cfg, _ = to_config(compose(SMALL))
    assert native.unsupported(cfg) is None
    cfg.model.name = "resnet"  # a model added later, with no kernel of its own
    assert native.unsupported(cfg) == "model=resnet (only model=mlp or model=transformer)"


@pytest.mark.parametrize(
    "overrides, why",
    [
        (["loss.temperature=2"], "loss.temperature=2.0 (the kernel implements only loss.temperature=1.0)"),
        (
            ["loss.label_smoothing=0.1"],
            "loss.label_smoothing=0.1 (the kernel implements only loss.label_smoothing=0.0)",
        ),
        (["loss.logit_norm_penalty=0.01"], "loss.logit_norm_penalty=0.01 (the kernel implements only"),
        (["loss=taylor"], "loss=taylor (only loss=softmax or loss=stablemax or loss=zloss)"),
        (["precision=float16"], "precision.loss_dtype=float16 (only precision.loss_dtype=float32 or"),
    ],
)
def test_what_the_kernels_do_not_claim_is_refused_under_native_and_announced_under_auto(overrides, why, capfd):
    from grokking.validation import ConfigError, validate

    cfg, _ = to_config(compose([*small(overrides), *overrides, "cpu_kernel=native"]))
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value).startswith(f"cpu_kernel=native cannot run {why}") and "\n" not in str(err.value)
    step = make_step(overrides, kernel="auto")
    assert step.native is None  # autograd
    (line,) = [x for x in capfd.readouterr().err.splitlines() if x.startswith("cpu_kernel=auto")] or [""]
    assert why in line or line == ""  # said once per process (an earlier test may have said it)


@pytest.mark.parametrize("param", ["loss.new_knob", "model.new_knob"])
def test_a_parameter_added_later_is_outside_the_kernels_until_one_claims_it(param):
    from grokking.losses import LOSSES
    from grokking.models import MODELS
    from grokking.registry import Param

    registry = {"loss": LOSSES, "model": MODELS}[param.split(".")[0]]
    option = "softmax" if registry is LOSSES else "mlp"
    params = registry.params[option]
    registry.params[option] = (*params, Param("new_knob", float, 0.0))  # as its registration would declare it
    registry.changed()
    try:
        cfg, _ = to_config(compose([*SMALL, f"{param}=0.5"]))
        assert native.unsupported(cfg) == f"{param}=0.5 (the kernel implements only {param}=0.0)"
        cfg, _ = to_config(compose(SMALL))
        assert native.unsupported(cfg) is None  # at its default the kernels compute what they always did
    finally:
        registry.params[option] = params
        registry.changed()


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_the_at_mm_path_matches_autograd_too(kernel, model):
    """Where the BLAS library exports no sgemm_/dgemm_, the kernels multiply through at::mm (inside
    the parallel region, on two threads here)."""
    before = torch.get_num_threads()
    kernel.set_direct_blas(False)
    try:
        torch.set_num_threads(2)
        overrides = [f"model={model}", "loss=stablemax", "precision=float64", *(["model.bias=true"] * (model == "mlp"))]
        assert_same_step(make_step(overrides), make_step(overrides, kernel="torch"), rtol=2e-6)
    finally:
        kernel.set_direct_blas(True)
        torch.set_num_threads(before)


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_gradients_are_written_into_the_same_tensors_and_survive_an_autograd_epoch(model):
    step = make_step([f"model={model}", "loss=softmax"])
    reference = make_step([f"model={model}", "loss=softmax"], kernel="torch")
    step()
    kept = [p.grad for p in step.native.params]  # the weights the kernel writes
    step()
    assert all(p.grad is g for p, g in zip(step.native.params, kept))  # no new allocation
    step(intervene=True)  # an autograd epoch (Fig. 8's intervention) sets new .grad tensors
    step()
    reference()
    for p, q in zip(step.params, reference.params):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=2e-6 * q.grad.abs().max().item())
