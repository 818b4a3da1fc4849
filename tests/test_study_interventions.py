"""The interventions study (reproduction/experiments/study_interventions.yaml through reproduction/study.py
and scripts/study.py): the manifest, the protocol (tuning grid -> best setting -> fresh seeds), the
price of the grid and the report, on synthetic run folders in tmp_path; one slow smoke run trains."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import reproduction.manifest as manifest
from reproduction import study as studies
from reproduction.manifest import ManifestError

ROOT = Path(__file__).resolve().parent.parent


def test_the_study_manifest_tunes_eight_methods_on_the_baselines_architectures_and_scores_them_on_fresh_seeds():
    s = studies.load("study_interventions")
    assert list(s.archs) == ["mlp2", "mlp1", "transformer"]
    assert {a: arch.budget for a, arch in s.archs.items()} == {"mlp2": 3000, "mlp1": 6000, "transformer": 3000}
    assert {a: arch.experiment for a, arch in s.archs.items()} == {a: f"study_baselines_{a}" for a in s.archs}
    assert list(s.methods) == [
        "adamw_wd", "perp_adamw", "stablemax", "grokfast", "grokfast_wd", "zloss", "norm", "output_scale"
    ]  # fmt: skip
    assert len(s.tuning_seeds) == 2 and len(s.fresh_seeds) == 5 and not set(s.tuning_seeds) & set(s.fresh_seeds)
    m = s.methods
    # each method's own parameter spans its paper's setting
    assert m["grokfast"].values["mlp1"] == (1, 2, 5) and "optimizer.grokfast_alpha=0.98" in m["grokfast"].overrides
    assert m["zloss"].values["mlp1"] == (1e-4, 1e-3, 1e-2) and m["norm"].values["mlp1"] == (0.5, 0.75, 1.0)
    assert m["output_scale"].values["mlp1"][0] < 1 < m["output_scale"].values["mlp1"][-1]
    assert m["adamw_wd"].values["transformer"] == (0, 0.1, 1) and m["adamw_wd"].values["mlp2"] == (
        0,
        0.1,
        0.3,
        1,
        3,
        10,
    )
    assert m["grokfast_wd"].after == ("adamw_wd", "optimizer.weight_decay", "wd") and m["grokfast"].after is None
    # the grid's size per architecture: lrs × values (+ beyond) × 2 tuning seeds
    runs = studies.Runs(s)
    assert (
        runs.tuning_size("mlp1", m["zloss"]) == 6 * 3 * 2 and runs.tuning_size("transformer", m["output_scale"]) == 18
    )
    # a method's edge rule adds settings as its runs call for them (the transformer's norms 1.5 and 2)
    assert runs.tuning_size("transformer", m["norm"]) == (3 * 3 + 2) * 2
    assert runs.tuning_size("mlp1", m["adamw_wd"]) == (6 * 6 + 6) * 2 and runs.tuning_size("mlp1", m["stablemax"]) == 12


def test_the_tuning_runs_of_the_baseline_methods_are_the_committed_ones_read_in_place():
    s = studies.load("study_interventions")
    runs = studies.Runs(s)
    tuning = runs.tuning("transformer", s.methods["perp_adamw"])
    assert len(tuning) == 10 and all(r.path.parent == ROOT / "results/study_baselines/runs/transformer" for r in tuning)
    assert {r.path.name for r in tuning} >= {"perpgrad_lr0.0005_wd0.0_s0", "perpgrad_lr0.001_wd0.0_s1"}
    assert all(runs.result("transformer", s.methods["perp_adamw"], r.setting, r.seed) for r in tuning)
    # a new method's runs go to the study's own folder
    [r, *_] = runs.tuning("mlp2", s.methods["zloss"])
    assert r.path == s.runs / "mlp2" / "zloss_lr0.001_z0.0001_s0"


def write_study(folder: Path, runs: Path, **changes) -> str:
    """A small study manifest in ``folder``: one architecture, three methods (one takes another's best)."""
    data = {
        "title": "tiny study",
        "study": {
            "runs": str(runs),
            "tuning_seeds": [0, 1],
            "fresh_seeds": [10, 11, 12],
            "lrs": {"mlp2": [0.01, 0.02]},
            "architectures": {"mlp2": {"experiment": "study_baselines_mlp2", "label": "MLP", "ms_per_epoch": 30}},
            "methods": {
                "adamw_wd": {
                    "label": "AdamW + decay",
                    "baseline": "adamw",
                    "overrides": ["optimizer=adamw"],
                    "param": {"key": "optimizer.weight_decay", "tag": "wd", "values": [0, 1]},
                    "beyond": {"mlp2": [{"lr": 0.05, "values": [1]}]},
                },
                "grokfast_wd": {
                    "label": "Grokfast + decay",
                    "overrides": ["optimizer=adamw", "optimizer.grokfast=true"],
                    "param": {"key": "optimizer.grokfast_lamb", "tag": "lamb", "values": [1, 2]},
                    "after": {"method": "adamw_wd", "key": "optimizer.weight_decay", "tag": "wd"},
                },
                "zloss": {
                    "label": "z-loss",
                    "overrides": ["optimizer=adamw", "loss=zloss"],
                    "param": {"key": "loss.z_coef", "tag": "z", "values": [0.001]},
                    "cost": 1.3,
                },
            },
        },
    }
    data["study"] |= changes
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return "tiny"


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    folder = tmp_path / "experiments"
    folder.mkdir()
    monkeypatch.setattr(manifest, "FOLDERS", [manifest.FOLDER, folder])
    runs = tmp_path / "runs"
    write_study(folder, runs)
    return studies.load("tiny"), runs, folder


def write_summary(run_dir: Path, seed: int, epoch_99: int | None, budget: int = 3000, status: str = "completed"):
    run_dir.mkdir(parents=True, exist_ok=True)
    per_seed = {
        str(seed): {
            "epoch_test_acc_95": None if epoch_99 is None else epoch_99 - 10,
            "epoch_test_acc_99": epoch_99,
            "best_test_acc": 1.0 if epoch_99 else 0.3,
        }
    }
    stop = epoch_99 + 20 if epoch_99 and epoch_99 + 20 < budget else budget
    summary = {"status": status, "epoch": stop, "epochs": budget, "per_seed": per_seed, "wall_time_s": stop * 0.03}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    rows = [
        {"epoch": e, "seed": seed, "test_acc": min(1.0, e / (epoch_99 or 10 * budget))} for e in range(0, stop + 1, 10)
    ]
    pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)


def fake_trainer(epochs_to_99, calls):
    """A launcher that writes each job's summary.json as train.py would: ``epochs_to_99(overrides, seed)``."""

    def launch(cmd):
        over = dict(o.split("=", 1) for o in cmd[3:])
        calls.append(over)
        for seed in over["seed"].split(","):
            run_dir = Path(over["hydra.sweep.dir"]) / over["hydra.sweep.subdir"].replace("${seed}", seed)
            write_summary(run_dir, int(seed), epochs_to_99(over, int(seed)))
        return 0

    return launch


def by_setting(over, seed):
    """lr 0.02 with decay 1 is fastest; decay 0 never generalizes; Grokfast λ 2 beats λ 1."""
    if over.get("optimizer.weight_decay") == "0":
        return None
    epochs = 400 if over["optimizer.lr"] == "0.02" else 800
    if over.get("optimizer.grokfast_lamb") == "2":
        epochs //= 2
    return epochs + 10 * seed


def test_the_protocol_tunes_on_two_seeds_runs_the_best_on_fresh_ones_and_a_rerun_trains_nothing(tiny):
    s, runs_dir, _ = tiny
    runs, calls = studies.Runs(s), []
    assert (
        studies.run(runs, list(s.archs), list(s.methods), ["device=cpu"], launcher=fake_trainer(by_setting, calls)) == 0
    )
    jobs = [(c["hydra.sweep.subdir"], c["seed"]) for c in calls]
    # AdamW: lrs × decays, then beyond the grid, on the tuning seeds; then its best (lr 0.02, decay 1) on the fresh ones
    assert jobs[:6] == [
        ("adamw_wd_lr0.01_wd0_s${seed}", "0,1"), ("adamw_wd_lr0.01_wd1_s${seed}", "0,1"),
        ("adamw_wd_lr0.02_wd0_s${seed}", "0,1"), ("adamw_wd_lr0.02_wd1_s${seed}", "0,1"),
        ("adamw_wd_lr0.05_wd1_s${seed}", "0,1"), ("adamw_wd_lr0.02_wd1_s${seed}", "10,11,12"),
    ]  # fmt: skip
    # Grokfast takes AdamW's best decay (1), tunes lr × λ, then its best on the fresh seeds
    grokfast = [c for c in calls if "grokfast_wd" in c["hydra.sweep.subdir"]]
    assert all(c["optimizer.weight_decay"] == "1" and c["device"] == "cpu" for c in grokfast)
    assert [(c["hydra.sweep.subdir"], c["seed"]) for c in grokfast][-1] == (
        "grokfast_wd_lr0.02_wd1_lamb2_s${seed}",
        "10,11,12",
    )
    assert all(c["experiment"] == "study_baselines_mlp2" for c in calls) and calls[-1]["loss.z_coef"] == "0.001"
    assert len(calls) == 6 + 5 + 3  # AdamW 5 + 1, Grokfast 4 + 1, z-loss 2 + 1
    # everything finished: a rerun launches nothing
    again = []
    assert studies.run(studies.Runs(s), ["mlp2"], list(s.methods), [], launcher=fake_trainer(by_setting, again)) == 0
    assert again == []
    # a cut run (interrupted) is launched again, alone
    write_summary(runs_dir / "mlp2" / "zloss_lr0.02_z0.001_s11", 11, None, status="interrupted")
    studies.run(studies.Runs(s), ["mlp2"], ["zloss"], [], launcher=fake_trainer(by_setting, again))
    assert [(c["hydra.sweep.subdir"], c["seed"]) for c in again] == [("zloss_lr0.02_z0.001_s${seed}", "11")]


def z_fastest_at_0_1(over, seed):
    """The z-loss: the larger its coefficient the faster, up to 0.1; lr 0.02 beats 0.01; lr 0.05 never generalizes."""
    if over["optimizer.lr"] == "0.05":
        return None
    epochs = {"0.001": 800, "0.01": 600, "0.1": 400, "1": 700}[over["loss.z_coef"]]
    return epochs - (100 if over["optimizer.lr"] == "0.02" else 0) + 10 * seed


@pytest.mark.parametrize(
    "edge, tuned",
    [
        # along the parameter, at the best lr: 0.01 and 0.1 join while the best sits at the end; 1 is past the best
        ({"along": "value", "steps": [0.01, 0.1, 1]}, [(0.02, 0.01), (0.02, 0.1), (0.02, 1.0)]),
        ({"along": "value", "steps": [0.01, 0.1, 1], "per": 2}, [(0.02, 0.01), (0.02, 0.1), (0.02, 1.0)]),
        # along lr, with every value: 0.05 never generalizes, so nothing joins after it
        ({"along": "lr", "steps": {"mlp2": [0.05, 0.1]}}, [(0.05, 0.001)]),
    ],
)
def test_an_edge_rule_tunes_past_the_grid_while_the_best_setting_sits_at_its_end(tiny, edge, tuned):
    _, runs_dir, folder = tiny
    data = yaml.safe_load((folder / "tiny.yaml").read_text())
    data["study"]["methods"]["zloss"]["edge"] = edge
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    s, calls = studies.load("tiny"), []
    assert studies.run(studies.Runs(s), ["mlp2"], ["zloss"], [], launcher=fake_trainer(z_fastest_at_0_1, calls)) == 0
    grid, best = [(0.01, 0.001), (0.02, 0.001)], (0.02, 0.1) if edge["along"] == "value" else (0.02, 0.001)
    # the tuning grid, the settings past its end, then the best on the fresh seeds
    assert [(float(c["optimizer.lr"]), float(c["loss.z_coef"])) for c in calls] == grid + tuned + [best]
    assert calls[-1]["seed"] == "10,11,12" and all(c["seed"] == "0,1" for c in calls[:-1])
    # the settings it added are derived from the finished runs: a new reader plans the same grid, trains nothing
    assert [(x.lr, x.value) for x in studies.Runs(s).grid("mlp2", s.methods["zloss"])] == grid + tuned
    again = []
    studies.run(studies.Runs(s), ["mlp2"], ["zloss"], [], launcher=fake_trainer(z_fastest_at_0_1, again))
    assert again == []


@pytest.mark.parametrize("wd, added", [(1, [0.05, 0.1, 0.2]), (10, [0.05])])
def test_an_edge_rule_skips_the_settings_training_would_refuse(tiny, wd, added):
    """AdamW refuses lr × decay >= 1: with decay 10 the lrs 0.1 and 0.2 are never planned or trained."""
    _, runs_dir, folder = tiny
    data = yaml.safe_load((folder / "tiny.yaml").read_text())
    data["study"]["methods"]["zloss"]["overrides"].append(f"optimizer.weight_decay={wd}")
    data["study"]["methods"]["zloss"]["edge"] = {"along": "lr", "steps": [0.05, 0.1, 0.2]}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    s, calls = studies.load("tiny"), []

    def fastest_at_the_largest_lr(over, seed):
        return round(900 - 2000 * float(over["optimizer.lr"])) + seed

    studies.run(studies.Runs(s), ["mlp2"], ["zloss"], [], launcher=fake_trainer(fastest_at_the_largest_lr, calls))
    assert [float(c["optimizer.lr"]) for c in calls] == [0.01, 0.02, *added, added[-1]]  # the last: fresh seeds
    assert [x.lr for x in studies.Runs(s).grid("mlp2", s.methods["zloss"])] == [0.01, 0.02, *added]
    assert studies.refusal(s, "mlp2", s.methods["zloss"], studies.Setting(0.1, 0.001)) == (
        None
        if wd == 1
        else "optimizer.weight_decay=10 with optimizer.lr=0.1 scales the weights by 1 − lr × "
        "weight_decay = 0 every step (AdamW's decoupled decay), which zeroes or flips them; expected lr × weight_decay < 1"
    )


def test_the_edge_rules_of_the_manifest_derive_the_settings_once_added_by_hand():
    """Grokfast + decay one lr past the grid while its best lr is the largest; the norm constraint
    two norms past the largest while it is the best (the 1-layer MLP's best went 1 -> 2 -> 4 -> 8)."""
    s = studies.load("study_interventions")
    runs, m = studies.Runs(s), s.methods
    added = {a: [(x.lr, x.value) for x in runs.grid(a, m["grokfast_wd"])[6 * 3 :]] for a in ("mlp1", "mlp2")}
    assert added == {
        "mlp1": [(lr, v) for lr in (0.1, 0.2, 0.3) for v in (1.0, 2.0, 5.0)],
        "mlp2": [(lr, v) for lr in (0.1, 0.2) for v in (1.0, 2.0, 5.0)],
    }
    # on the transformer, 0.01 and 0.02 (AdamW's lrs past its grid); on the MLPs (decay 3) 0.5 and up are refused
    assert [x.lr for x in runs.grid("transformer", m["grokfast_wd"])[3 * 3 :: 3]] == [0.01, 0.02]
    norms = [(x.lr, x.value) for x in runs.grid("mlp1", m["norm"])[6 * 3 :]]
    assert norms == [(0.01, v) for v in (1.5, 2, 3, 4, 6, 8, 12, 16)]
    best = runs.best("mlp1", m["norm"])
    assert (best.lr, best.value) == (0.01, 8.0)


def test_a_method_that_takes_another_methods_best_waits_for_its_tuning(tiny, capsys):
    s, runs_dir, _ = tiny
    write_summary(runs_dir / "mlp2" / "adamw_wd_lr0.01_wd1_s0", 0, 500)  # one of AdamW's 10 tuning runs
    calls = []
    studies.run(studies.Runs(s), ["mlp2"], ["grokfast_wd"], [], dry_run=True, launcher=fake_trainer(by_setting, calls))
    assert "mlp2 grokfast_wd: tuning waits (adamw_wd's tuning is not finished)" in capsys.readouterr().out
    assert calls == []


def test_the_best_setting_generalizes_most_then_fastest_then_gets_furthest():
    rows = [
        {"lr": 0.01, "share_99": 1.0, "median_99": 900.0, "median_best_test_acc": 1.0, "_setting": "both seeds, slow"},
        {"lr": 0.02, "share_99": 0.5, "median_99": 100.0, "median_best_test_acc": 1.0, "_setting": "one seed, fast"},
        {"lr": 0.05, "share_99": 1.0, "median_99": 800.0, "median_best_test_acc": 1.0, "_setting": "both, faster"},
    ]
    assert studies.pick(pd.DataFrame(rows)) == "both, faster"
    never = [
        {"lr": 0.01, "share_99": 0.0, "median_99": math.inf, "median_best_test_acc": 0.2, "_setting": "low"},
        {"lr": 0.02, "share_99": 0.0, "median_99": math.inf, "median_best_test_acc": 0.6, "_setting": "furthest"},
    ]
    assert studies.pick(pd.DataFrame(never)) == "furthest"
    assert studies.pick(pd.DataFrame()) is None


def test_both_protocols_rank_settings_alike():
    """The grid report (every setting on the same seeds) picks per method what the fresh protocol picks."""
    from reproduction.study_grid import best_settings

    rows = [
        {"lr": 0.01, "share_99": 1.0, "median_99": 900.0, "median_best_test_acc": 1.0, "_setting": "slow"},
        {"lr": 0.02, "share_99": 0.5, "median_99": 100.0, "median_best_test_acc": 1.0, "_setting": "half"},
        {"lr": 0.05, "share_99": 1.0, "median_99": 800.0, "median_best_test_acc": 1.0, "_setting": "fast"},
        {"lr": 0.001, "share_99": 1.0, "median_99": 800.0, "median_best_test_acc": 1.0, "_setting": "tie, smaller lr"},
    ]
    never = [
        {"lr": 0.01, "share_99": 0.0, "median_99": math.nan, "median_best_test_acc": 0.2, "_setting": "low"},
        {"lr": 0.02, "share_99": 0.0, "median_99": math.nan, "median_best_test_acc": 0.6, "_setting": "furthest"},
    ]
    table = pd.DataFrame(
        [r | {"arch": "mlp2", "method": "a", "replicates": 5} for r in rows]
        + [r | {"arch": "mlp2", "method": "b", "replicates": 5} for r in never]
    )
    picked = best_settings(table, min_replicates=5).set_index("method")["_setting"]
    assert picked.to_dict() == {"a": studies.pick(pd.DataFrame(rows)), "b": studies.pick(pd.DataFrame(never))}
    assert picked.to_dict() == {"a": "tie, smaller lr", "b": "furthest"}


def test_a_run_trained_past_the_budget_counts_only_what_it_reached_within_it(tmp_path):
    write_summary(tmp_path / "r", 0, 4500, budget=10_000)  # an extended run of the baselines study
    out = studies.outcome(studies.finished(tmp_path / "r"), 3000)
    assert out["epoch_99"] is None and out["epoch"] == 3000 and out["budget"] == 3000


def test_plan_prices_the_runs_left_from_ms_per_epoch_the_budget_and_the_committed_share(tiny, tmp_path):
    s, runs_dir, folder = tiny
    prior = tmp_path / "prior.csv"
    pd.DataFrame(
        {"arch": ["mlp2"] * 4, "method": ["adamw", "adamw", "perpgrad", "perpgrad"], "epoch": [3000, 1500, 300, 300],
         "budget": [3000] * 4}
    ).to_csv(prior, index=False)  # fmt: skip
    write_study(folder, runs_dir, prior=str(prior))
    s = studies.load("tiny")
    write_summary(runs_dir / "mlp2" / "adamw_wd_lr0.01_wd0_s0", 0, None)
    table = studies.price(studies.Runs(s), ["mlp2"], list(s.methods)).set_index("method")
    a, g, z = table.loc["adamw_wd"], table.loc["grokfast_wd"], table.loc["zloss"]
    assert (a.tuning_runs, a.tuning_done, a.fresh_runs, a.to_run) == (10, 1, 3, 12)
    assert (
        a.upper_h == pytest.approx(12 * 3000 * 30 / 3.6e6) and a.share == pytest.approx(0.75) and a.share_from == "own"
    )
    assert (g.tuning_runs, g.to_run) == (8, 11) and g.share == pytest.approx(0.425) and g.share_from == "grid"
    assert z.ms_per_epoch == pytest.approx(39) and z.expected_h == pytest.approx(z.upper_h * 0.425)
    text = studies.plan_text(table.reset_index())
    assert "all: 30 runs to make" in text and "mlp2         total" in text


def test_plan_prices_a_method_from_its_own_finished_runs_once_it_has_enough(tiny):
    s, runs_dir, _ = tiny
    method = s.methods["zloss"]
    for lr in (0.01, 0.02):  # its whole tuning grid (one value, two lrs, two seeds), every run censored
        for seed in (0, 1):
            write_summary(runs_dir / "mlp2" / f"zloss_lr{lr:g}_z0.001_s{seed}", seed, None)
    z = studies.price(studies.Runs(s), ["mlp2"], ["zloss"]).set_index("method").loc["zloss"]
    assert (z.tuning_done, z.to_run, z.share, z.share_from) == (4, 3, 1.0, "runs")
    assert len(studies.Runs(s).tuning("mlp2", method)) == 4


def test_the_report_marks_missing_cells_not_run_and_draws_the_figure(tiny, tmp_path):
    s, runs_dir, _ = tiny
    studies.run(studies.Runs(s), ["mlp2"], ["adamw_wd", "grokfast_wd"], [], launcher=fake_trainer(by_setting, []))
    out, figure = tmp_path / "report", tmp_path / "figures" / "tiny.png"
    text = studies.report(studies.Runs(s), ["mlp2"], list(s.methods), out, figure)
    table = pd.read_csv(out / "table.csv").set_index("method")
    # AdamW's fresh seeds 10, 11, 12 took 500, 510, 520 epochs: median 510, all three generalized
    assert table.loc["adamw_wd", "median_99"] == 510 and table.loc["adamw_wd", "k_99"] == 3
    assert (
        table.loc["adamw_wd", "best"] == "lr 0.02, wd 1" and table.loc["grokfast_wd", "best"] == "lr 0.02, wd 1, lamb 2"
    )
    assert table.loc["grokfast_wd", "median_99"] == 310
    assert "| MLP | AdamW + decay | lr 0.02, wd 1 (10/10) | 500 [490, 510] | 510 [500, 520] | 3 of 3 |" in text
    assert "| MLP | z-loss | tuning not finished (0/4) | not run | not run | not run |" in text
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["method"]) == {"adamw_wd", "grokfast_wd"} and set(curves["seed"]) == {10, 11, 12}
    assert figure.stat().st_size > 10_000 and len(pd.read_csv(out / "tuning.csv")) == 5 + 4
    # git keeps no metrics.csv: a report without them keeps the curves it wrote before
    for m in runs_dir.glob("mlp2/*/metrics.csv"):
        m.unlink()
    kept = studies.curves(studies.Runs(s), ["mlp2"], list(s.methods), previous=curves)
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), curves)
    assert studies.curves(studies.Runs(s), ["mlp2"], list(s.methods)).empty


@pytest.mark.parametrize(
    "change, error",
    [
        ({"fresh_seeds": [1, 10]}, "tiny.yaml: study.fresh_seeds: seeds [1] are also tuning seeds"),
        ({"lrs": {}}, "tiny.yaml: study.lrs.mlp2: missing"),
        ({"tuning_seeds": "0,1"}, "tiny.yaml: study.tuning_seeds: must be a non-empty list of whole numbers"),
        (
            {"architectures": {"mlp2": {"experiment": "nope", "ms_per_epoch": 1}}},
            "conf/experiment/nope.yaml does not exist",
        ),
        ({"budget": 3}, "tiny.yaml: study.budget: unknown field; choose from: runs, tuning_seeds"),
        ({"protocol": "bandit"}, "tiny.yaml: study.protocol: unknown protocol 'bandit'; choose from: fresh, grid"),
        ({"protocol": "grid"}, "tiny.yaml: study.fresh_seeds: a grid study scores its best settings on the tuning"),
        ({"run_name": "{method}_{rate}"}, "tiny.yaml: study.run_name: '{method}_{rate}' is not a template of"),
        ({"extend": {"mlp2": 100}}, "tiny.yaml: study.extend.mlp2: must be a whole number of epochs above the budget"),
        ({"min_replicates": 3}, "tiny.yaml: study.min_replicates: must be a whole number from 1 to 2"),
    ],
)
def test_a_bad_study_section_is_one_line_naming_the_file_and_the_field(tiny, change, error):
    _, runs_dir, folder = tiny
    write_study(folder, runs_dir, **change)
    with pytest.raises(ManifestError, match=None) as e:
        studies.load("tiny")
    assert error in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "edge, error",
    [
        ({"along": "epochs", "steps": [1]}, "methods.zloss.edge.along: unknown axis 'epochs'; choose from: lr, value"),
        ({"along": "lr", "steps": [1], "per": 0}, "methods.zloss.edge.per: must be a whole number of at least 1"),
        ({"along": "lr", "steps": {"mlp9": [1]}}, "methods.zloss.edge.steps.mlp9: not an architecture"),
        ({"along": "lr"}, "methods.zloss.edge.steps: missing"),
    ],
)
def test_a_bad_edge_rule_is_one_line_naming_the_field(tiny, edge, error):
    _, runs_dir, folder = tiny
    data = yaml.safe_load((folder / "tiny.yaml").read_text())
    data["study"]["methods"]["zloss"]["edge"] = edge
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ManifestError) as e:
        studies.load("tiny")
    assert error in str(e.value) and "\n" not in str(e.value)


def test_a_method_after_one_listed_later_is_refused(tiny):
    _, runs_dir, folder = tiny
    data = yaml.safe_load((folder / "tiny.yaml").read_text())
    methods = data["study"]["methods"]
    data["study"]["methods"] = {"grokfast_wd": methods["grokfast_wd"], "adamw_wd": methods["adamw_wd"]}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    with pytest.raises(
        ManifestError, match="methods.grokfast_wd.after.method: 'adamw_wd' must be a method listed before"
    ):
        studies.load("tiny")


def test_the_entry_point_refuses_an_unknown_method_or_manifest_in_one_line(capsys):
    from scripts import study as script

    assert script.main(["--methods", "adamw_wd,lion", "--plan"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: --methods: unknown method 'lion'; choose from: adamw_wd, perp_adamw")
        and err.count("\n") == 1
    )
    assert script.main(["fig2", "--plan"]) == 2
    assert "error: fig2.yaml: has no study section" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_study_trains_through_the_entry_point_and_a_rerun_skips_it(tmp_path):
    folder = tmp_path / "experiments"
    folder.mkdir()
    runs = tmp_path / "runs"
    write_study(folder, runs, lrs={"mlp2": [0.01]}, fresh_seeds=[10])
    code = (
        "import sys, reproduction.manifest as m; from pathlib import Path; "
        f"m.FOLDERS.append(Path({str(folder)!r})); from scripts.study import main; sys.exit(main(sys.argv[1:]))"
    )
    tiny = ["--set", "dataset.modulus=23", "--set", "epochs=20", "--set", "log_every=5", "--set", "device=cpu"]
    args = ["tiny", "--methods", "adamw_wd,zloss", "--out", str(tmp_path / "report"), "--figures", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code, *args, *tiny], cwd=ROOT, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    made = sorted(p.name for p in (runs / "mlp2").iterdir() if p.is_dir())
    assert "zloss_lr0.01_z0.001_s0" in made and "zloss_lr0.01_z0.001_s10" in made
    assert len(made) == (3 * 2 + 1) + (1 * 2 + 1), made  # AdamW: 3 settings × 2 seeds + 1 fresh; z-loss: 1 × 2 + 1
    cfg = yaml.safe_load((runs / "mlp2" / "zloss_lr0.01_z0.001_s10" / "config.yaml").read_text())
    assert cfg["seed"] == cfg["dataset"]["seed"] == 10 and cfg["loss"]["z_coef"] == 0.001 and cfg["epochs"] == 20
    assert cfg["stop_when"]["threshold"] == 0.99
    assert (tmp_path / "tiny.png").is_file() and "| MLP | z-loss | lr 0.01, z 0.001 (2/2) |" in res.stdout
    assert "| MLP | Grokfast + decay |" in res.stdout  # the report covers the methods not trained now too
    res = subprocess.run([sys.executable, "-c", code, *args, *tiny], cwd=ROOT, capture_output=True, text=True, env=env)
    assert res.returncode == 0 and "train.py -m" not in res.stdout


def test_a_run_name_template_names_the_runs_and_the_hydra_subdir(tiny):
    _, runs_dir, folder = tiny
    write_study(folder, runs_dir, run_name="{method}_lr{lr:g}_wd{value}")
    s = studies.load("tiny")
    method = s.methods["adamw_wd"]
    [r, *_] = studies.Runs(s).tuning("mlp2", method)
    assert r.path == runs_dir / "mlp2" / "adamw_wd_lr0.01_wd0.0_s0"
    cmd = studies.overrides(s, "mlp2", method, r.setting, [0, 1], runs_dir)
    assert "hydra.sweep.subdir=adamw_wd_lr0.01_wd0.0_s${seed}" in cmd


def test_a_sub_grid_keeps_single_values_and_drops_the_settings_beyond(tiny):
    s, _, _ = tiny
    sub = studies.restrict(s, lrs=[0.02], values=[1], seeds=[0])
    assert sub.lrs == {"mlp2": (0.02,)} and sub.tuning_seeds == (0,)
    assert [(x.lr, x.value) for x in studies.grid(sub, "mlp2", sub.methods["adamw_wd"])] == [(0.02, 1.0)]
    assert sub.methods["zloss"].values == {"mlp2": (0.001,)}  # one value: not a tuned parameter, kept


def test_the_docs_methods_table_says_each_setting_once_from_the_manifest_and_the_runs(tiny):
    from reproduction import fragments
    from reproduction.study_methods import methods_markdown

    _, _, folder = tiny
    data = yaml.safe_load((folder / "tiny.yaml").read_text())
    data["study"]["methods"]["zloss"] |= {"edge": {"along": "value", "steps": [0.01, 0.1, 1]}, "note": "PaLM: 1e-4"}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    s = studies.load("tiny")
    rows = methods_markdown(s).splitlines()
    assert rows[:4] == [
        "| method | overrides | its own parameter | past the lr grid |",
        "|---|---|---|---|",
        "| AdamW + decay | `optimizer=adamw` | `optimizer.weight_decay` ∈ {0, 1} | lr 0.05 (wd 1) |",
        "| Grokfast + decay | `optimizer=adamw` `optimizer.grokfast=true`, `optimizer.weight_decay` = AdamW + decay's"
        " best | `optimizer.grokfast_lamb` ∈ {1, 2} | — |",
    ]
    rule = "edge rule: while the best setting has the largest z at its lr, the next z past it at that lr, from 0.01, 0.1, 1"
    assert (
        rows[4]
        == f"| z-loss | `optimizer=adamw` `loss=zloss` | `loss.z_coef` ∈ {{0.001}} (PaLM: 1e-4) | {rule}; added: tuning |"
    )
    # once its tuning ran, the settings the rule added, read from the runs
    studies.run(studies.Runs(s), ["mlp2"], ["zloss"], [], launcher=fake_trainer(z_fastest_at_0_1, []))
    assert methods_markdown(s).splitlines()[4].endswith(f"| {rule}; added: z 0.01, 0.1, 1 at lr 0.02 |")
    # the page's fragment is that table
    ctx = fragments.Context(verdicts=[], official=None, results=folder, page="page.md")
    page = "Methods:\n<!-- gen study-methods tiny -->\nold\n<!-- /gen -->\n"
    assert (
        fragments.rewrite(page, ctx)
        == f"Methods:\n<!-- gen study-methods tiny -->\n{methods_markdown(s)}\n<!-- /gen -->\n"
    )


def test_the_pages_quote_a_cell_and_the_compute_from_the_report_and_the_runs(tiny):
    from reproduction import fragments

    s, runs_dir, _ = tiny
    for name, hours, status in [
        ("zloss_lr0.01_z0.001_s0", 0.5, "completed"),
        ("zloss_lr0.01_z0.001_s1", 1.0, "diverged"),
    ]:
        write_summary(runs_dir / "mlp2" / name, 0, 500, status=status)
        summary = json.loads((runs_dir / "mlp2" / name / "summary.json").read_text())
        (runs_dir / "mlp2" / name / "summary.json").write_text(json.dumps(summary | {"wall_time_s": hours * 3600}))
    write_summary(runs_dir / "mlp2" / "zloss_lr0.02_z0.001_s0", 0, None, status="interrupted")  # not finished
    ctx = fragments.Context(verdicts=[], official=None, results=ROOT / "results", page="page.md")
    assert fragments.rewrite("<!-- gen study-compute tiny -->x<!-- /gen -->", ctx) == (
        "<!-- gen study-compute tiny -->2 runs, 1.5 CPU-hours<!-- /gen -->"
    )
    assert studies.spent(s, "mlp2") == (2, 5400.0)
    # a cell is the report table's, without its count
    table = fragments.RENDERERS["study-table"](ctx, ["study_interventions"])
    row = next(line for line in table.splitlines() if line.startswith("| AdamW + weight decay |"))
    cell = fragments.RENDERERS["study-cell"](ctx, ["study_interventions", "transformer", "adamw_wd"])
    assert row.split(" | ")[-1] == f"{cell}, 5/5 |"
