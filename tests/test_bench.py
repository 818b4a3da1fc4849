"""A tiny run of the speed benchmark (the full one is `make bench`, not a test)."""

import csv

import pytest
import torch
from omegaconf import OmegaConf

from grokking.cli import compose
from reproduction import figure_times


@pytest.fixture(scope="module")
def bench():
    from reproduction import bench

    return bench


def test_bench_smoke_writes_every_setting(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("GROKKING_LATE_CACHE", str(tmp_path / "late"))
    out = tmp_path / "bench.csv"
    bench.main(["--smoke", "--threads", "1", "--out", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert [r["setting"] for r in rows[: len(bench.SETTINGS)]] == [s.name for s in bench.SETTINGS]
    late = [r for r in rows if r["state"]]
    # each late-state setting: early and late, each also with one band, through its path and autograd
    # (the float16 loss takes autograd either way)
    assert len(late) == 8 * len(bench.LATE_SETTINGS) - 4
    assert {r["state"] for r in late} == {"epoch 0", "epoch 0, one band", "epoch 20", "epoch 20, one band"}
    for r in late:
        assert float(r["late_over_early"]) > 0 and (r["state"] != "epoch 0" or float(r["late_over_early"]) == 1)
    assert len(rows) == len(bench.SETTINGS) + len(late) + 2
    for r in rows:
        assert float(r["ms_per_epoch"]) > 0 and float(r["matmul_gflops"]) > 0
    for r in rows[: len(bench.SETTINGS)]:
        assert float(r["gflop_per_epoch"]) > 0 and float(r["ratio_to_floor"]) > 0


def test_flop_count_of_the_mlp_leaves_out_the_gather(bench):
    step = bench.Epoch.composed(["dataset.modulus=23", "model.width=32", "dataset.train_fraction=0.4"], [0])
    n, h, c = step.n_train, 32, 23
    # hidden and output layers: forward, gradient of the input and of the weight; first layer: a gather
    assert step.flops() == 3 * 2 * n * (h * h + h * c)


def test_seed_sweep_smoke_reports_the_gain_over_single_runs(bench, tmp_path):
    out = tmp_path / "seeds.csv"
    bench.main(["--smoke", "--threads", "1", "--seed-sweep", "2,1", "--epochs", "3", "--out", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert [(r["setting"], int(r["seeds"])) for r in rows] == [
        (s.name.split(",")[0], k) for s in bench.SEED_SWEEP for k in (1, 2)
    ]
    for single, pair in zip(rows[::2], rows[1::2]):
        assert float(single["gain_over_single_runs"]) == 1.0
        expected = 2 * float(single["ms_per_epoch"]) / float(pair["ms_per_epoch"])
        assert float(pair["gain_over_single_runs"]) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["0,2", "a", ""])
def test_bad_seed_counts_are_one_line_errors(bench, bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--seed-sweep", bad])
    assert exit_info.value.code == 2
    assert f"argument --seed-sweep: {bad!r}" in capsys.readouterr().err


def test_bench_kernel_column_names_the_path_each_setting_took(bench):
    native = bench.Epoch.composed(["dataset.modulus=23", "model.width=32"], [0])
    autograd = bench.Epoch.composed(["dataset.modulus=23", "model.width=32", "cpu_kernel=torch"], [0])
    assert autograd.kernel == "torch"
    assert native.kernel in ("native", "torch")  # torch where no C++ compiler can build the kernel
    assert native.flops() == autograd.flops()  # counted on the autograd step either way


def test_figure_times_times_every_run_of_a_results_folder(tmp_path):
    for fig, run, extra in [("fig2", "small", []), ("table1", "two_seeds", ["seeds=[0,1]", "loss=stablemax"])]:
        out = tmp_path / fig / run
        out.mkdir(parents=True)
        cfg = compose(["device=cpu", "dataset.modulus=13", "model.width=16", "epochs=600", *extra])
        (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        (out / "summary.json").write_text('{"epochs": 600}')
    rows = figure_times.main(["--results", str(tmp_path), "--epochs", "2", "--warmup", "1"])
    assert [(r["figure"], r["run"], r["seeds"]) for r in rows] == [("fig2", "small", 1), ("table1", "two_seeds", 2)]
    written = list(csv.DictReader((tmp_path / "figure_times_cpu.csv").open()))
    assert [float(r["minutes"]) for r in written] == pytest.approx([r["ms_per_epoch"] * 600 / 60_000 for r in rows])


def test_an_intervention_setting_intervenes_from_its_epoch(bench):
    """Fig. 8's late-state setting times the intervened run: the correct-class gradients are zeroed
    from its epoch on, in the timed epochs and in the training that produces the cached state."""
    small = ["dataset.modulus=23", "model.width=32", "dataset.train_fraction=0.6", "precision=float64"]
    plain = bench.Epoch.composed(small, [0])
    intervened = bench.Epoch.composed([*small, "sc_intervention_epoch=1"], [0])

    def grads(epoch):
        epoch.forward_backward()
        return [p.grad.clone() for p in epoch.model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(grads(plain), grads(intervened)))  # epoch 0: not yet
    intervened()
    plain()
    assert intervened.epoch == 1
    assert not all(torch.allclose(a, b) for a, b in zip(grads(plain), grads(intervened)))
    assert any("intervention" in s.name and s.runs == ("fig8/intervention",) for s in bench.LATE_SETTINGS)
    for s in bench.LATE_SETTINGS:  # each is timed from a trained state and stands for committed runs
        assert s.late_epochs > 0 and s.seeds == [0] and s.runs, s.name
