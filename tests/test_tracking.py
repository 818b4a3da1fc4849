"""The wandb logger: offline files in the run directory, same names as metrics.csv, always finished."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import grokking.train

pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = ["dataset.modulus=23", "model.width=32", "epochs=6", "log_every=2", "logger=wandb"]


def read_wandb_records(path: Path) -> list:
    """The records of a ``run-<id>.wandb`` file: a 7-byte header (":W&B", magic, version), then
    LevelDB-log chunks (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last) in 32 KiB blocks."""
    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pos, parts = [], 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too short for a header: padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if kind == 0:
            break
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(parts))
            parts = b""
    return records


def finished_records(out_dir: Path, timeout: float = 30.0) -> list:
    """The records of the run's offline file once its exit record is on disk: ``run.finish()``
    returns before wandb's service process has written everything."""
    (run_dir,) = (out_dir / "wandb").glob("offline-run-*")
    (log,) = run_dir.glob("run-*.wandb")
    end = time.monotonic() + timeout
    while True:
        records = read_wandb_records(log)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > end:
            return records
        time.sleep(0.1)


def offline_run(out_dir: Path) -> dict:
    run = {"history": [], "summary": {}, "config": {}, "exit_code": None}
    for rec in finished_records(out_dir):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run["id"], run["group"] = rec.run.run_id, rec.run.run_group
            run["config"] = {i.key: json.loads(i.value_json) for i in rec.run.config.update}
        elif kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
            run["history"].append({k: v for k, v in items.items() if not k.startswith("_")})
        elif kind == "summary":
            run["summary"].update(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update}
            )
        elif kind == "exit":
            run["exit_code"] = rec.exit.exit_code
    return run


def test_offline_run_lives_in_the_run_directory_with_every_metric_and_the_config(run):
    summary, out = run(TINY)
    wb = offline_run(out)
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(wb["history"]) == len(metrics)
    for logged, row in zip(wb["history"], metrics.to_dict("records")):
        assert set(logged) == set(row)
        assert logged == pytest.approx(row)
    assert wb["config"]["dataset"]["modulus"] == 23 and wb["config"]["logger"]["mode"] == "offline"
    assert wb["summary"]["summary/status"] == "completed"
    assert wb["exit_code"] == 0
    assert (out / "wandb" / "run_id").read_text().strip() == wb["id"]


def test_a_failed_run_is_finished_and_the_next_run_is_separate(tmp_path, monkeypatch):
    from grokking.cli import compose

    rows_for = grokking.train.rows_for
    calls = {"n": 0}

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated failure")
        return rows_for(*args)

    monkeypatch.setattr(grokking.train, "rows_for", failing)
    with pytest.raises(RuntimeError, match="simulated failure"):
        grokking.train.train(compose(["device=cpu", *TINY]), tmp_path / "failed")
    monkeypatch.undo()
    failed = offline_run(tmp_path / "failed")
    assert failed["exit_code"] == 1 and len(failed["history"]) == 1

    grokking.train.train(compose(["device=cpu", *TINY]), tmp_path / "next")
    after = offline_run(tmp_path / "next")
    assert after["id"] != failed["id"] and len(after["history"]) == 4 and after["exit_code"] == 0
    assert len(offline_run(tmp_path / "failed")["history"]) == 1  # nothing of the next run leaked in


def test_resumed_run_continues_the_same_wandb_run(run, tmp_path):
    out = tmp_path / "resumed"
    first, _ = run([*TINY, "epochs=4", "checkpoint_every=2"], out_dir=out)
    run_id = (out / "wandb" / "run_id").read_text()
    (out / "summary.json").unlink()  # as if killed after its last checkpoint
    run([*TINY, "epochs=6"], out_dir=out)
    assert (out / "wandb" / "run_id").read_text() == run_id
    assert len(list((out / "wandb").glob("offline-run-*"))) == 2


def test_without_wandb_installed_logger_wandb_fails_with_one_line(tmp_path):
    code = (
        "import sys; sys.modules['wandb'] = None; from grokking.train import main; "
        f"sys.argv = ['train.py', 'logger=wandb', 'hydra.run.dir={tmp_path / 'run'}']; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: logger=wandb needs the wandb package: pip install -e '.[wandb]'"
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_disabled_mode_writes_no_wandb_files(run):
    summary, out = run([*TINY, "logger.mode=disabled"])
    assert summary["status"] == "completed"
    assert not list((out / "wandb").glob("*-run-*"))


def test_a_bad_wandb_mode_is_one_line_with_the_choices():
    from grokking.cli import compose
    from grokking.train import to_config
    from grokking.validation import ConfigError, validate

    with pytest.raises(ConfigError, match="^logger.mode=bogus is not valid; choose one of: offline, online, disabled$"):
        validate(to_config(compose(["logger=wandb", "logger.mode=bogus"]))[0])
