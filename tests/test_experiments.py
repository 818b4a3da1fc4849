"""docs/experiments.md as a specification: a new experiment is one manifest, and every tool takes it.

The page's manifest is saved beside the paper's (its grid cut to a few epochs), listed, trained
through ``scripts/reproduce.py`` (slow; a fast variant writes synthetic runs), drawn by
``scripts/figures.py``, reported by ``scripts/claims.py`` and removed again. Its ``--print-multirun``
commands make the same run folders with ``python train.py -m``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import reproduction.manifest as manifest
from reproduction.claims import ClaimsTableError, load_claims
from reproduction.manifest import ManifestError, experiment, experiments

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "experiments.md"
NAME = "softmax_vs_stablemax"
TINY = ["epochs=4", "log_every=2", "checkpoint_every=0", "model.width=16", "device=cpu"]


def page_manifest() -> dict:
    """The manifest the page shows (its first yaml block)."""
    [block, *_] = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    return yaml.safe_load(block)


@pytest.fixture
def added(tmp_path, monkeypatch) -> Path:
    """The page's manifest saved as a new experiment (its grid at a few epochs); removed afterwards."""
    data = page_manifest()
    data["grid"]["overrides"] += TINY
    folder = tmp_path / "experiments"
    folder.mkdir()
    path = folder / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    monkeypatch.setattr(manifest, "FOLDERS", [manifest.FOLDER, folder])
    yield path
    path.unlink(missing_ok=True)


def reproduce(*args: str) -> None:
    from scripts import reproduce as script

    script.main(list(args))


def draw_and_report(results: Path, out: Path) -> str:
    from scripts import figures
    from scripts.claims import main as claims

    figures.main([NAME, "--results", str(results), "--out", str(out / "figures")])
    assert (out / "figures" / f"{NAME}.png").stat().st_size > 1000
    claims(results, out / "CLAIMS.md")
    [row] = [line for line in (out / "CLAIMS.md").read_text().splitlines() if "StableMax generalizes" in line]
    return row


def write_run(folder: Path, test_acc: float) -> None:
    """A finished two-seed run whose test accuracy ends at ``test_acc``."""
    folder.mkdir(parents=True)
    rows = [{"epoch": e, "seed": s, "train_acc": 1.0, "test_acc": test_acc * e / 4} for s in (0, 1) for e in (0, 2, 4)]
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    final = {"test_acc": test_acc, "train_acc": 1.0}
    per_seed = {str(s): {"final": final, "epoch_sc_50": None} for s in (0, 1)}
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "epochs": 4, "per_seed": per_seed}))


def test_the_page_manifest_is_a_two_setting_grid_with_two_replicates_a_plot_and_a_claim(added, capsys):
    exp = experiment(NAME)
    assert {name: run.replicates for name, run in exp.runs.items()} == {"softmax": 2, "stablemax": 2}
    assert exp.plot.function is None and [s.run for s in exp.plot.panels[0].series] == ["softmax", "stablemax"]
    assert list(experiments())[-1] == NAME  # after the paper's experiments (no order given)
    [claim] = [c for c in load_claims() if c.figure == NAME]
    assert claim.paper == "—"  # no paper value: judged against its own check
    reproduce(NAME, "--replicates", "target", "--list")
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 4 and f"{NAME}/stablemax [replicates/1]: python train.py" in listed[-1]
    assert listed[-1].endswith("loss=stablemax dataset.seed=1 seed=1")


def test_a_new_experiment_is_drawn_and_reported_and_goes_away_with_its_manifest(added, tmp_path):
    results = tmp_path / "results"
    for k, root in ((0, results), (1, results / "replicates" / "1")):
        write_run(root / NAME / "softmax", 0.2 + 0.1 * k)
        write_run(root / NAME / "stablemax", 0.9)
    row = draw_and_report(results, tmp_path / "out")
    assert row.startswith(f"| {NAME} | StableMax generalizes") and "| holds |" in row and "n=2" in row
    added.unlink()
    assert NAME not in experiments() and all(c.figure != NAME for c in load_claims())


@pytest.mark.slow
def test_the_walkthrough_trains_draws_and_reports(added, tmp_path):
    results = tmp_path / "results"
    reproduce(NAME, "--replicates", "target", "--out", str(results), "--jobs", "2", "--device", "cpu")
    for root in (results, results / "replicates" / "1"):
        for run in ("softmax", "stablemax"):
            assert json.loads((root / NAME / run / "summary.json").read_text())["status"] == "completed"
    row = draw_and_report(results, tmp_path / "out")
    assert "| missing |" not in row and "n=2" in row


def test_print_multirun_names_the_experiment_folder_and_each_run(added, tmp_path, capsys):
    reproduce(NAME, "--print-multirun", "--replicates", "2", "--out", str(tmp_path / "results"))
    first, second = (shlex.split(line) for line in capsys.readouterr().out.splitlines())
    assert first[:3] == ["python", "train.py", "-m"] and "loss=softmax,stablemax" in first
    assert f"hydra.sweep.dir={tmp_path / 'results' / NAME}" in first
    assert "hydra.sweep.subdir=${hydra:runtime.choices.loss}" in first
    assert f"hydra.sweep.dir={tmp_path / 'results' / 'replicates' / '1' / NAME}" in second
    assert "dataset.seed=1" in second and "seed=1" in second


@pytest.mark.slow
def test_the_printed_multirun_writes_the_reproduce_layout_and_skips_what_is_done(added, tmp_path, capsys):
    reproduce(NAME, "--print-multirun", "--replicates", "2", "--out", str(tmp_path / "results"))
    commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    for command in commands:
        subprocess.run([sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True, check=True)
    for root in (tmp_path / "results", tmp_path / "results" / "replicates" / "1"):
        for run in ("softmax", "stablemax"):
            assert json.loads((root / NAME / run / "summary.json").read_text())["status"] == "completed"
    again = subprocess.run([sys.executable, *commands[0][1:]], cwd=ROOT, capture_output=True, text=True, check=True)
    assert again.stderr.count("skipping") == 2


@pytest.mark.parametrize(
    "change, error",
    [
        ({"grid": {"name": "{loss}", "product": {}}}, "x.yaml: grid.product: must map each swept key"),
        ({"grid": {"name": "{lss}", "product": {"loss": ["softmax"]}}}, "x.yaml: grid.name: {lss} is not a key"),
        ({"replicates": 0}, "x.yaml: replicates: must be a positive whole number, not 0"),
        ({"titel": "x"}, "x.yaml: titel: unknown field; choose from: title, order"),
        (
            {"official": {"nope": {"flags": [], "epochs": 1, "log_frequency": 1}}},
            "x.yaml: official.nope: 'nope' is not a run",
        ),
        (
            {"plot": {"panels": [{"title": "t", "series": [{"run": "nope"}]}]}},
            "x.yaml: plot.panels[1].series[1].run: 'nope' is not a run; choose from: softmax, stablemax",
        ),
        (
            {"plot": {"panels": [{"series": [{"run": "softmax", "color": "pink"}]}]}},
            "x.yaml: plot.panels[1].series[1].color: 'pink' is neither a colour key",
        ),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_file_and_the_field(tmp_path, change, error):
    data = {**page_manifest(), **change}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ManifestError) as err:
        manifest.load(path)
    assert str(err.value).startswith(error) and "\n" not in str(err.value)
    with pytest.raises(ClaimsTableError, match=re.escape(error)):
        load_claims(path)


def test_no_script_or_measure_lists_the_runs_of_a_paper_figure():
    """A run name of a paper figure is spelled in its manifest, and in at most two code files."""
    code = [p for p in ROOT.glob("*/**/*.py") if p.parts[len(ROOT.parts)] in ("scripts", "reproduction", "grokking")]
    texts = {p: p.read_text(encoding="utf-8") for p in code}
    for name in ("a_perp_adamw", "temperature16", "b_stablemax", "c_softmax", "frac0.7_float16", "sgd_wd", "wd8"):
        spelled = [p.name for p, text in texts.items() if re.search(rf"\b{re.escape(name)}\b", text)]
        assert len(spelled) <= 2, f"{name} is spelled in {spelled}"
