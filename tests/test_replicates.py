"""Claims on distributions: replicate folders, the onset rule, the four verdicts, the three-way
classes, and the replicate runs that ``scripts/reproduce.py --replicates`` plans."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from reproduction.claims import (
    Claim,
    Distribution,
    approx,
    at_least,
    at_most,
    bootstrap_ci,
    deviation_class,
    evaluate,
    in_range,
    report,
    summary_line,
    within,
)
from reproduction.manifest import replicated_runs
from reproduction.measures import MEASURES
from reproduction.measures.registry import AtLeast
from reproduction.replicate_status import block
from reproduction.results import MissingRun, Replicate, metrics, onset, onsets, replicates, value_at
from scripts.reproduce import replicate_overrides

ROOT = Path(__file__).resolve().parent.parent


def write_run(folder: Path, test_acc: list[float], seeds=(0,), official: bool = False) -> None:
    folder.mkdir(parents=True)
    rows = [
        {"epoch": 10 * i, "seed": s, "test_acc": a, "train_acc": 1.0} for s in seeds for i, a in enumerate(test_acc)
    ]
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    summary = {"status": "completed", "per_seed": {str(s): {"final": {"test_acc": test_acc[-1]}} for s in seeds}}
    if official:
        summary["code"] = "official"
    (folder / "summary.json").write_text(json.dumps(summary))


def final_acc(r) -> float:
    df = metrics("figX", "run", r)
    return 100 * float(df[df.epoch == df.epoch.max()].test_acc.mean())


CLAIM = Claim("Fig. X", "final test accuracy", "≈ 50 %", final_acc, within(50, 5), "±5 points", "{:.1f} %")


def test_onset_needs_two_logged_epochs_in_a_row():
    epochs = [0, 10, 20, 30, 40]
    assert onset(epochs, [0.0, 0.6, 0.1, 0.6, 0.7], 0.5) == 30  # the lone spike at 10 is noise
    assert onset(epochs, [0.0, 0.1, 0.2, 0.3, 0.9], 0.5) == 40  # a crossing in the last row counts
    assert onset(epochs, [0.0, 0.1, 0.2, 0.3, 0.4], 0.5) is None
    # ... unless the run stopped early there: the next row, had it come, might have fallen back
    assert onset(epochs, [0.0, 0.1, 0.2, 0.3, 0.9], 0.5, ended=False) is None
    assert onset(epochs, [0.0, 0.1, 0.2, 0.8, 0.9], 0.5, ended=False) == 30


def test_replicate_folders_are_found_and_pooled(tmp_path):
    write_run(tmp_path / "figX" / "run", [0.1, 0.5])
    write_run(tmp_path / "replicates" / "1" / "figX" / "run", [0.2, 0.6])
    write_run(tmp_path / "replicates" / "2" / "figX" / "run", [0.3, 0.4])
    reps = replicates(tmp_path)
    assert [r.index for r in reps] == [0, 1, 2]
    pooled = metrics("figX", "run", tmp_path)
    assert sorted(pooled.replicate.unique()) == [0, 1, 2] and len(pooled) == 6
    assert metrics("figX", "run", reps[2]).test_acc.tolist() == [0.3, 0.4]
    assert onsets("figX", "run", "test_acc", 0.5, tmp_path) == [10, 10, None]


def test_an_unfinished_replicate_is_not_pooled(tmp_path):
    write_run(tmp_path / "figX" / "run", [0.1, 0.5])
    write_run(tmp_path / "replicates" / "1" / "figX" / "run", [0.2, 0.6])
    path = tmp_path / "replicates" / "1" / "figX" / "run" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "interrupted"}))
    assert "replicate" not in metrics("figX", "run", tmp_path)


def test_official_seeds_are_replicates(tmp_path):
    write_run(tmp_path / "figX" / "run", [0.1, 0.5], seeds=(42, 0, 1), official=True)
    reps = replicates(tmp_path)
    assert [r.seed for r in reps] == [0, 1, 42]
    assert metrics("figX", "run", reps[0]).seed.unique().tolist() == [0]
    with pytest.raises(FileNotFoundError):
        metrics("figX", "run", Replicate(tmp_path, seed=7))


@pytest.mark.parametrize(
    ("finals", "status"),
    [
        ([0.50, 0.52, 0.48], "holds"),
        ([0.30, 0.40, 0.52], "within seed spread"),  # mean 40.7 %, but one replicate is within ±5
        ([0.30, 0.31, 0.32], "deviates"),
    ],
)
def test_the_verdict_is_about_the_distribution(tmp_path, finals, status):
    for k, final in enumerate(finals):
        folder = tmp_path / ("" if k == 0 else f"replicates/{k}") / "figX" / "run"
        write_run(folder, [0.0, final])
    verdict = evaluate(CLAIM, tmp_path)
    assert verdict.status == status
    assert verdict.dist.n == 3 and "n=3" in verdict.ours


def test_bootstrap_interval_is_deterministic_and_brackets_the_mean():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    lo, hi = bootstrap_ci(values)
    assert (lo, hi) == bootstrap_ci(values) and lo < 4.0 < hi
    assert "95 % CI" in Distribution(tuple(values)).text("{:.1f}")


def test_classes_read_the_direction_and_the_official_seed_count(tmp_path):
    ours, official = tmp_path / "ours", tmp_path / "official"
    write_run(ours / "figX" / "run", [0.0, 0.2])
    write_run(official / "figX" / "run", [0.0, 0.2], seeds=(42, 0, 1), official=True)
    v = evaluate(CLAIM, ours)
    assert v.status == "deviates"
    assert deviation_class(v, evaluate(CLAIM, official)) == "paper only"  # below the band in both codes
    write_run(tmp_path / "one" / "figX" / "run", [0.0, 0.2], seeds=(42,), official=True)
    assert deviation_class(v, evaluate(CLAIM, tmp_path / "one")) == "unsettled"  # the same, on one official seed
    write_run(tmp_path / "above" / "figX" / "run", [0.0, 0.9], seeds=(42, 0, 1), official=True)
    assert deviation_class(v, evaluate(CLAIM, tmp_path / "above")) == "ours only"  # the official code misses above
    assert deviation_class(v, evaluate(CLAIM, tmp_path / "none")) == "not checkable"
    write_run(tmp_path / "good" / "figX" / "run", [0.0, 0.5], seeds=(42,), official=True)
    good = evaluate(CLAIM, tmp_path / "good")
    assert deviation_class(v, good) == "ours only"
    line = summary_line([v], [good])
    assert line == (
        "1 claims: 0 hold, 1 deviate; official code on 1: 1 hold, 0 within seed spread, 0 deviate;"
        " our deviations: 0 paper only, 0 unsettled, 1 ours only, 0 not checkable"
    )
    assert "| ours only |" in report([v], [good], "720d244")


def test_a_never_reached_milestone_is_its_own_side(tmp_path):
    """Ours reverses an order (a negative gap) where the official code never reaches the milestone:
    not the same deviation."""
    never = Claim("Fig. X", "gap", "> 0", lambda r: None if r.root.name == "official" else -5.0, at_least(1), "> 0")
    write_run(tmp_path / "ours" / "figX" / "run", [0.0, 0.2])
    write_run(tmp_path / "official" / "figX" / "run", [0.0, 0.2], seeds=(42, 0, 1), official=True)
    v, o = evaluate(never, tmp_path / "ours"), evaluate(never, tmp_path / "official")
    assert (v.status, o.status) == ("deviates", "deviates")
    assert deviation_class(v, o) == "ours only"


def test_within_seed_spread_needs_the_interval_of_the_mean_to_meet_the_band(tmp_path):
    """One replicate of five inside the band is not enough when the 95 % interval of the mean misses it."""
    for k, final in enumerate([0.30, 0.31, 0.29, 0.30, 0.52]):
        write_run(tmp_path / ("" if k == 0 else f"replicates/{k}") / "figX" / "run", [0.0, final])
    verdict = evaluate(CLAIM, tmp_path)
    assert verdict.status == "deviates" and verdict.in_band == "1 of 5"


def test_a_categorical_claim_reads_the_mode(tmp_path):
    best = Claim("Fig. X", "best", "< 8", final_acc, at_most(60), "< 8", "{:.0f}", categorical=True)
    for k, final in enumerate([0.6, 0.8, 0.8, 0.6, 0.8]):
        write_run(tmp_path / ("" if k == 0 else f"replicates/{k}") / "figX" / "run", [0.0, final])
    verdict = evaluate(best, tmp_path)
    assert verdict.ours == "80 (mode, 3 of 5; values 60, 80)" and verdict.value == 80.0
    assert verdict.status == "deviates"  # most replicates are outside the band


def test_an_approximate_check_reports_its_verdict_at_half_and_twice_the_slack(tmp_path):
    wide = replace(CLAIM, holds=approx(50, 50, 5))
    write_run(tmp_path / "figX" / "run", [0.0, 0.535])
    verdict = evaluate(wide, tmp_path)
    assert (verdict.status, verdict.robustness) == ("holds", "deviates / holds")
    assert evaluate(replace(CLAIM, holds=at_least(50)), tmp_path).robustness == "as stated"


def test_replicates_vary_split_and_init():
    assert replicate_overrides(["experiment=fig2"], 0) == ["experiment=fig2"]
    assert replicate_overrides(["experiment=fig2", "precision=float16"], 3) == [
        "experiment=fig2",
        "precision=float16",
        "dataset.seed=3",
        "seed=3",
    ]
    # a run that trains several init seeds at once keeps that many, shifted
    assert replicate_overrides(["experiment=fig1a"], 2)[-1] == "seeds=[2000,2001,2002,2003,2004]"


def test_reproduce_lists_the_missing_replicates():
    out = subprocess.run(
        [sys.executable, "scripts/reproduce.py", "fig8", "--replicates", "3", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(out) == 6
    assert "fig8/baseline [replicates/2]: python train.py experiment=fig8 dataset.seed=2 seed=2" in out


def test_an_interrupted_run_answers_no_claim(tmp_path):
    """A run stopped before its end (an official run has no checkpoints) is drawn, not judged: its
    last row is not its final value."""
    write_run(tmp_path / "figX" / "run", [0.0, 0.5], seeds=(42,), official=True)
    path = tmp_path / "figX" / "run" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "interrupted"}))
    assert evaluate(CLAIM, tmp_path).status == "missing"
    assert len(metrics("figX", "run", tmp_path)) == 2  # the plots still read it


def interrupted(folder: Path) -> None:
    path = folder / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "interrupted"}))


def test_a_run_that_stopped_early_answers_what_it_reached(tmp_path):
    """The rows of a run stopped before its end are the start of its trajectory: an onset confirmed
    in them, or a value at an epoch they passed, is the full run's; an onset they do not show, or a
    value beyond them, is unknown (missing), never "never"."""
    write_run(tmp_path / "figX" / "run", [0.0, 0.6, 0.7, 0.2], seeds=(42, 7), official=True)
    interrupted(tmp_path / "figX" / "run")
    seed = Replicate(tmp_path, seed=42)
    assert onsets("figX", "run", "test_acc", 0.5, seed) == [10]
    assert value_at("figX", "run", "test_acc", 20, seed) == 0.7
    with pytest.raises(MissingRun, match="stopped at epoch 30, before test_acc reached 0.9"):
        onsets("figX", "run", "test_acc", 0.9, seed)
    with pytest.raises(MissingRun, match="stopped at epoch 30, before epoch 40"):
        value_at("figX", "run", "test_acc", 40, seed)
    with pytest.raises(MissingRun, match="did not finish"):
        metrics("figX", "run", seed)  # the last row is not the final value
    # the same rows of a finished run: a crossing in the last row counts, and "never" is an answer
    write_run(tmp_path / "done" / "figX" / "run", [0.0, 0.1, 0.2, 0.9])
    assert onsets("figX", "run", "test_acc", 0.5, Replicate(tmp_path / "done")) == [30]
    assert onsets("figX", "run", "test_acc", 0.95, Replicate(tmp_path / "done")) == [None]
    interrupted(tmp_path / "done" / "figX" / "run")
    with pytest.raises(MissingRun):
        onsets("figX", "run", "test_acc", 0.5, Replicate(tmp_path / "done"))


def test_the_status_table_counts_finished_replicates_against_their_target(tmp_path):
    for k in (0, 1, 2):  # three finished replicates of a short run
        write_run((tmp_path / "replicates" / str(k) if k else tmp_path) / "figX" / "short", [0.1, 0.9])
    write_run(tmp_path / "figX" / "long", [0.1, 0.9])
    write_run(tmp_path / "replicates" / "1" / "figX" / "long", [0.1, 0.2])
    interrupted(tmp_path / "replicates" / "1" / "figX" / "long")  # not finished: does not count
    runs = {"figX": {"short": 5, "long": 3, "never_run": 5}}  # each run's target, from its manifest
    assert block(runs, tmp_path).splitlines() == [
        "0 of 3 runs have their target number of replicates; 9 replicates are still to run.",
        "",
        "| figure | runs | replicates | target |",
        "| --- | --- | --- | --- |",
        "| figX | `short` | 3 (open) | 5 |",
        "| figX | `long` | 1 (open) | 3 |",
        "| figX | `never_run` | 0 (open) | 5 |",
    ]
    for k in (3, 4):
        write_run(tmp_path / "replicates" / str(k) / "figX" / "short", [0.1, 0.9])
    assert block(runs, tmp_path).splitlines()[4] == "| figX | `short` | 5 | 5 |"


def test_runs_that_only_vary_the_init_seed_get_no_replicates():
    runs = replicated_runs()
    assert "b_stablemax" in runs["fig1"] and "b_stablemax_seed1" not in runs["fig1"]
    assert "fig12" not in runs and "fig2_bf16" not in runs  # every run there sets its seeds


@pytest.mark.parametrize(
    "check, x, accepted, above",
    [
        (at_least(95), 96, True, True),  # every larger value passes too
        (at_least(95), 90, False, None),  # a larger value might pass
        (at_most(5), 6, False, False),  # no larger value can pass
        (at_most(5), 3, True, None),  # a larger value might not
        (within(50, 5), 56, False, False),
        (within(50, 5), 50, True, None),
        (in_range(0, 10), 10, False, False),  # range-like: 10 is left out
        (in_range(0, 10), 9.9, True, None),
    ],
)
def test_checks_are_intervals_that_say_what_a_lower_bound_decides(check, x, accepted, above):
    assert check(x) is accepted
    assert check.above(x) is above


def test_a_lower_bound_decides_only_where_every_larger_value_agrees(tmp_path):
    """A largest-over-runs measure whose other runs stopped early gives a lower bound ("≥"): it
    settles a claim with an upper bound it already passed, and nothing else."""
    reps = [Replicate(tmp_path, seed=s) for s in (42, 0)]
    bound = Claim("Fig. X", "rise after SC", "≈ 0 points", lambda r: AtLeast(39.0), at_most(5), "≤ 5", "{:+.1f} points")
    verdict = evaluate(bound, reps)
    assert verdict.status == "deviates" and verdict.ours == "≥ +39.0 points (all equal; n=2)"
    assert evaluate(replace(bound, holds=at_most(50)), reps).status == "missing"  # the ends might pass 50
    assert evaluate(replace(bound, holds=at_least(10)), reps).status == "holds"
    # an exact value on any replicate wins: the bounds are then left out, as before
    mixed = replace(bound, measure=lambda r: 3.0 if r.seed == 0 else AtLeast(39.0))
    assert evaluate(mixed, reps).status == "holds" and evaluate(mixed, reps).ours == "+3.0 points"


def write_fig2(root: Path, frac: float, prec: str, test_acc: list[float], sc: list[float], status: str) -> None:
    folder = root / "fig2" / f"frac{frac}_{prec}"
    folder.mkdir(parents=True)
    rows = [
        {"epoch": 10 * i, "seed": 42, "test_acc": a, "train_acc": 1.0, "sc_fraction": f}
        for i, (a, f) in enumerate(zip(test_acc, sc))
    ]
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    (folder / "summary.json").write_text(json.dumps({"status": status, "code": "official", "per_seed": {"42": {}}}))


def test_the_rise_after_sc_over_runs_that_stopped_at_their_onset_is_a_lower_bound(tmp_path):
    sc = [0.0, 0.6, 0.7, 0.8]
    for prec, rise, status in [
        ("float16", 0.3, "completed"),
        ("float32", 0.0, "stopped"),
        ("float64", 0.1, "completed"),
    ]:
        write_fig2(tmp_path, 0.6, prec, [0.1, 0.2, 0.2, 0.2 + rise], sc, status)
    measure = MEASURES["gain_after_sc"]("fig2", [f"frac0.6_{p}" for p in ("float16", "float32", "float64")])
    value = measure(Replicate(tmp_path, seed=42))
    assert isinstance(value, AtLeast) and value == pytest.approx(30.0)
    write_fig2(tmp_path / "all", 0.6, "float32", [0.1, 0.2, 0.2, 0.2], sc, "completed")
    for prec in ("float16", "float64"):
        shutil.copytree(tmp_path / "fig2" / f"frac0.6_{prec}", tmp_path / "all" / "fig2" / f"frac0.6_{prec}")
    exact = measure(Replicate(tmp_path / "all", seed=42))
    assert not isinstance(exact, AtLeast) and exact == pytest.approx(30.0)


def test_the_plan_times_an_unbenchmarked_run_by_its_committed_cpu_replicates(tmp_path, capsys):
    """A run without a benchmark row is timed by the median wall time of its committed one-thread
    CPU runs (not GPU ones), brought to the benchmark's idle-core scale by the slowdown of the runs
    timed both ways; the total is given on both scales; a run with neither is named as untimed."""
    from scripts.reproduce import print_plan

    header = "figure,run,epochs,seeds,kernel,ms_per_epoch,late_from_epoch,late_ms_per_epoch,minutes,matmul_gflops,threads,torch"
    # figX/timed: benchmarked at 5 idle minutes, committed at 10 beside another job: slowdown 2
    (tmp_path / "figure_times_cpu.csv").write_text(header + "\nfigX,timed,100,1,torch,3000,,,5,1,1,2.13.0\n")
    made = {
        ("", "run"): ("cpu", 600),
        ("replicates/1/", "run"): ("cpu", 1200),
        ("replicates/2/", "run"): ("cuda", 6),
        ("", "timed"): ("cpu", 600),
    }
    for (prefix, name), (device, wall) in made.items():
        folder = tmp_path / f"{prefix}figX" / name
        folder.mkdir(parents=True)
        summary = {"status": "completed", "device": device, "torch_threads": 1, "wall_time_s": wall, "epochs": 100}
        (folder / "summary.json").write_text(json.dumps(summary))
    todo = tmp_path / "replicates" / "3"
    print_plan([("figX", "run", [], todo), ("figX", "other", [], todo)], results=tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["figX/run", "3", "100", "4500.0", "7.5", "median", "of", "2", "committed", "/", "2.00"]
    assert out[-1] == (
        "total: 0.1 CPU-hours on an idle core, 0.2 beside another job (x 2.00: the median slowdown of 1 run"
        " timed both ways); no timing for 1 run: figX/other"
    )
