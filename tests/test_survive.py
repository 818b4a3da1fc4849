"""Runs that survive: nothing a run produced is lost, nothing is reported wrongly, and every bad
input or damaged file ends in one ``error:`` line (the cases of a fuzzing pass, one test each)."""

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import grokking.train as train_module
from grokking.cli import compose
from grokking.train import prepare_run_dir, to_config
from grokking.validation import ConfigError, validate

ROOT = Path(__file__).resolve().parent.parent
TINY = ["dataset.modulus=23", "model.width=32", "epochs=6", "log_every=2"]
DIVERGES = ["dataset.modulus=23", "model.width=32", "epochs=20", "log_every=1", "optimizer=sgd", "optimizer.lr=1e30"]


def cli(args, cwd=ROOT, script="train.py"):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def one_error_line(res, *needles):
    """The process failed with exit code 2 and exactly one stderr line, ``error: ...`` with the needles."""
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def last_error_line(res, *needles, code=2):
    """A run that failed after training started: exit ``code``, no traceback, its last stderr line
    ``error: ...`` with the needles (the progress bar's lines come before it)."""
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr and lines and lines[-1].startswith("error: "), res.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def rejected(overrides, *needles):
    """``validate`` (or the config conversion before it) refuses the overrides, naming the needles."""
    with pytest.raises(ConfigError) as info:
        cfg, _ = to_config(compose(["device=cpu", *overrides]))
        validate(cfg)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def files_of(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("metrics.csv", "summary.json", "checkpoint.pt", "config.yaml")}


# 1 -------------------------------------------------------------------------------------------------
def test_a_diverged_run_is_kept_like_a_completed_one(run, tmp_path):
    out = tmp_path / "diverged"
    summary, _ = run(DIVERGES, out)
    assert summary["status"] == "diverged"
    before = (out / "metrics.csv").read_bytes()
    with pytest.raises(ConfigError, match="already holds a diverged run"):
        run([*DIVERGES[:-1], "optimizer.lr=0.01"], out)
    assert (out / "metrics.csv").read_bytes() == before
    summary, _ = run([*DIVERGES[:-1], "optimizer.lr=0.01", "overwrite=true"], out)
    assert summary["status"] == "completed"


# 2 -------------------------------------------------------------------------------------------------
def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(run, tmp_path, monkeypatch):
    out = tmp_path / "r"
    run(TINY, out)
    old = files_of(out)

    def broken(cfg):
        raise RuntimeError("the dataset cannot be built")

    monkeypatch.setattr(train_module, "build_dataset", broken)
    with pytest.raises(RuntimeError, match="cannot be built"):
        run([*TINY, "optimizer.lr=0.5", "overwrite=true"], out)
    assert files_of(out) == old and not (out / ".previous").exists()
    monkeypatch.undo()

    # the process died while replacing (old run moved aside, no new checkpoint): the next run restores it
    _, cfg_dict = to_config(compose(["device=cpu", *TINY, "optimizer.lr=0.5", "overwrite=true"]))
    prepare_run_dir(out, cfg_dict, overwrite=True)
    assert (out / ".previous").is_dir() and not (out / "metrics.csv").exists()
    with pytest.raises(ConfigError, match="already holds a completed run"):
        run(TINY, out)
    assert files_of(out) == old and not (out / ".previous").exists()

    summary, _ = run([*TINY, "optimizer.lr=0.5", "overwrite=true"], out)
    assert summary["status"] == "completed" and files_of(out) != old and not (out / ".previous").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["optimizer"]["lr"] == 0.5


# 3 -------------------------------------------------------------------------------------------------
def test_overwrite_leaves_a_wandb_folder_alone(run, tmp_path):
    out = tmp_path / "r"
    run(TINY, out)
    (out / "wandb").mkdir()
    (out / "wandb" / "notes.txt").write_text("someone's offline runs")
    run([*TINY, "overwrite=true"], out)
    assert (out / "wandb" / "notes.txt").read_text() == "someone's offline runs"


# 4 -------------------------------------------------------------------------------------------------
def test_a_refused_run_leaves_the_recorded_config_of_the_run_there(tmp_path):
    out = tmp_path / "r"
    small = ["dataset.modulus=23", "model.width=32", "epochs=4", "device=cpu", f"hydra.run.dir={out}"]
    assert cli(small).returncode == 0
    recorded = {name: (out / ".hydra" / name).read_text() for name in ("config.yaml", "overrides.yaml")}
    assert "epochs=4" in recorded["overrides.yaml"]
    res = cli([*small, "optimizer.lr=0.5"])  # refused: a completed run is there
    one_error_line(res, "already holds a completed run")
    assert {name: (out / ".hydra" / name).read_text() for name in recorded} == recorded


def test_default_run_directories_started_in_one_second_do_not_collide(monkeypatch):
    import datetime
    import itertools

    import hydra.core.utils
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from grokking.cli import CONF_DIR
    from grokking.config import register_configs

    ticks = itertools.count(1)

    class Clock:  # every reading one microsecond later, all within one second
        @staticmethod
        def now():
            return datetime.datetime(2026, 1, 1, 12, 0, 0, next(ticks))

    monkeypatch.setattr(hydra.core.utils, "datetime", Clock)
    register_configs()
    dirs = []
    for _ in range(2):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            dirs.append(str(hydra_compose("config", return_hydra_config=True).hydra.run.dir))
    assert dirs[0] != dirs[1] and all(d.startswith("outputs/2026-01-01/12-00-00") for d in dirs)


# 5 -------------------------------------------------------------------------------------------------
def test_resuming_with_fewer_epochs_than_trained_is_refused(run, tmp_path):
    out = tmp_path / "r"
    run([*TINY, "checkpoint_every=2"], out)
    (out / "summary.json").unlink()  # as if it had stopped after its last checkpoint
    with pytest.raises(ConfigError, match="epochs=4 is fewer than the 6 epochs"):
        run([*TINY[:-2], "epochs=4", "log_every=2", "checkpoint_every=2"], out)


# 6 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override",
    [
        "optimizer.eps=inf",
        "loss.temperature=inf",
        "optimizer.lr=inf",
        "optimizer.lr=nan",
        "optimizer.weight_decay=inf",
        "model.init_scale=inf",
        "loss.logit_norm_penalty=inf",
        "optimizer.betas=[0.9,nan]",
        "dataset.train_fraction=nan",
    ],
)
def test_non_finite_values_are_rejected(override):
    rejected([override], override.split("=")[0], "finite")


@pytest.mark.parametrize(
    "override", ["loss.temperature=1e-300", "loss.temperature=1e300", "model.init_scale=1e-300", "optimizer.eps=1e30"]
)
def test_values_that_make_a_run_degenerate_are_rejected(override):
    rejected([override], override.split("=")[0] + "=", "a number in [")


def test_non_finite_value_on_the_command_line_is_one_line(tmp_path):
    res = cli(["optimizer.eps=inf", "device=cpu", f"hydra.run.dir={tmp_path / 'r'}"])
    one_error_line(res, "optimizer.eps=inf", "finite")
    assert not (tmp_path / "r" / "metrics.csv").exists()


# 7 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        ["dataset.modulus=2", "dataset.train_fraction=0.1"],
        ["dataset.train_fraction=0.00001"],
        ["dataset=sparse_parity", "dataset.n_samples=4", "dataset.train_fraction=0.1"],
    ],
)
def test_an_empty_training_or_test_set_is_rejected(overrides):
    rejected(overrides, "dataset.train_fraction=", "set empty")


def test_the_kernels_check_their_inputs_and_raise():
    import grokking.native as native

    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    module = native.load()
    w = [torch.randn(46, 8), torch.randn(8, 23)]
    grads = [torch.empty_like(t) for t in w]
    x, y = torch.randint(0, 46, (10, 2)), torch.randint(0, 23, (10,))
    step = lambda x, y, w=w: module.mlp_step(w, [], x, True, y, 0, torch.float32, 1.0, 16, grads)  # noqa: E731
    step(x, y)  # valid inputs run
    for bad_x, bad_y, needle in [
        (x[:0], y[:0], "non-empty"),
        (x, y.clone().fill_(23), "label 23"),
        (x, y.clone().fill_(-1), "label -1"),
        (x.clone().fill_(46), y, "token row 46"),
        (x, y[:5], "one label per sample"),
    ]:
        with pytest.raises(RuntimeError, match=needle):
            step(bad_x, bad_y)
    with pytest.raises(RuntimeError, match="input width"):
        module.mlp_step([w[0], torch.randn(9, 23)], [], x, True, y, 0, torch.float32, 1.0, 16, grads)


# 8 -------------------------------------------------------------------------------------------------
def test_keys_outside_the_schema_are_refused(tmp_path):
    rejected(["+foo=1"], "foo is not a key", "choose one of: dataset, model")
    rejected(["+model.widht=3"], "model.widht is not a key", "width")
    res = cli(["+epochs_typo=3", "device=cpu", f"hydra.run.dir={tmp_path / 'r'}"])
    one_error_line(res, "epochs_typo is not a key")


# 9 -------------------------------------------------------------------------------------------------
def test_the_sweep_summary_lists_jobs_that_failed_or_never_started(tmp_path):
    from grokking.sweep_summary import write_summary

    sweep = tmp_path / "sweep"
    tiny = ["dataset.modulus=23", "model.width=32", "epochs=4", "device=cpu"]
    res = cli(["-m", "optimizer.lr=0.01,-1,0.02", *tiny, f"hydra.sweep.dir={sweep}"])
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr  # case 17: no traceback
    assert res.stderr.strip().splitlines()[-1].startswith("error: job 1 of the sweep")
    shutil.rmtree(sweep / "2")  # as if the cluster never started it
    table = write_summary(sweep)
    assert list(table["job"]) == ["0", "1", "2"]
    assert list(table["status"]) == ["completed", "failed", "not started"]
    assert list(table["optimizer.lr"]) == ["0.01", "-1", "0.02"]


# 10 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_metrics_csv_damaged_during_a_run_is_rebuilt_from_its_rows(run, tmp_path, monkeypatch, damage):
    reference, _ = run([*TINY, "epochs=20"], tmp_path / "reference")
    out = tmp_path / "damaged"
    rows_for = train_module.rows_for

    def damaging(epoch, seeds, values):
        if epoch == 10:
            path = out / "metrics.csv"
            path.unlink() if damage == "delete" else path.write_text(path.read_text()[:30])
        return rows_for(epoch, seeds, values)

    monkeypatch.setattr(train_module, "rows_for", damaging)
    summary, _ = run([*TINY, "epochs=20"], out)
    assert summary["status"] == "completed"
    assert (out / "metrics.csv").read_text() == (tmp_path / "reference" / "metrics.csv").read_text()


# 11 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["seed=3", "seeds=[0,1]"], "seed=3 has no effect"),
        (["dataset=mnist", "dataset.train_fraction=0.9"], "dataset.train_fraction=0.9 has no effect"),
        (["optimizer=adamw", "optimizer.momentum=0.9"], "optimizer.momentum=0.9 has no effect"),
        (["optimizer=perp_adamw", "optimizer.momentum=0.9"], "optimizer.momentum=0.9 has no effect"),
    ],
)
def test_settings_that_would_be_ignored_are_refused(overrides, needle):
    rejected(overrides, needle)


def test_the_summary_records_how_every_stretch_of_a_resumed_run_trained(run, tmp_path):
    out = tmp_path / "r"
    run([*TINY, "checkpoint_every=2", "cpu_kernel=torch"], out)
    (out / "summary.json").unlink()
    summary, _ = run([*TINY[:-2], "epochs=10", "log_every=2", "checkpoint_every=2", "cpu_kernel=auto"], out)
    assert [(s["from_epoch"], s["training_step"]) for s in summary["stretches"]][0] == (0, "torch")
    assert [s["from_epoch"] for s in summary["stretches"]] == [0, 6]
    kinds = {s["training_step"] for s in summary["stretches"]}
    assert summary["training_step"] == ("mixed" if len(kinds) > 1 else "torch")


# 12 ------------------------------------------------------------------------------------------------
class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp") / f"grokking_exploit_{os.getpid()}"


def test_a_crafted_checkpoint_cannot_run_code(run, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    with open(out / "checkpoint.pt", "wb") as f:
        pickle.dump({"model": Exploit()}, f, protocol=2)
    with pytest.raises(ConfigError, match="checkpoint.pt cannot be read"):
        run(TINY, out)
    assert not MARKER.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_checkpoint_is_one_line_that_says_what_to_do(run, tmp_path, damage):
    out = tmp_path / "r"
    run([*TINY, "checkpoint_every=2"], out)
    (out / "summary.json").unlink()
    ckpt = out / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": os.urandom(300)}[damage])
    with pytest.raises(ConfigError) as info:
        run(TINY, out)
    message = str(info.value)
    assert "checkpoint.pt cannot be read" in message and "overwrite=true" in message and "\n" not in message


def test_checkpoints_load_with_weights_only(run, tmp_path):
    _, out = run([*TINY, "snapshot_every=2"])
    torch.load(out / "checkpoint.pt", weights_only=True)
    torch.load(out / "snapshots.pt", weights_only=True)


# 13 ------------------------------------------------------------------------------------------------
TRANSFORMER = ["model=transformer", "model.d_model=16", "model.n_heads=2", "model.d_mlp=32"]


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ([*TRANSFORMER, "model.n_heads=0"], "model.n_heads=0"),
        ([*TRANSFORMER, "model.n_heads=-2"], "model.n_heads=-2"),
        ([*TRANSFORMER, "model.d_model=0"], "model.d_model=0"),
        ([*TRANSFORMER, "model.d_mlp=0"], "model.d_mlp=0"),
        (["dataset.modulus=5000"], "dataset.modulus=5000 needs about"),
        (["dataset.modulus=100000"], "dataset.modulus=100000 needs about"),
        (["dataset=add_mod_binary", "dataset.code_bits=40"], "dataset.code_bits=40"),
        (["dataset=add_mod_binary", "dataset.code_bits=64"], "dataset.code_bits=64"),
        (["dataset=add_mod_binary", "dataset.code_bits=0"], "dataset.code_bits=0"),
        (["dataset=sparse_parity", "dataset.seed=-1"], "dataset.seed=-1"),
        (["dataset=sparse_parity", "dataset.n_samples=100000000", "dataset.noise_bits=60"], "needs about"),
    ],
)
def test_validation_holes_are_closed(overrides, needle):
    rejected(overrides, needle)


# 14 ------------------------------------------------------------------------------------------------
def idx(shape, data: bytes | None = None) -> bytes:
    header = bytes([0, 0, 8, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)
    return header + (bytes(int(torch.tensor(shape).prod())) if data is None else data)


@pytest.mark.parametrize(
    "file,content,needle",
    [
        ("train-images-idx3-ubyte", b"garbage that is no IDX file", "not an IDX file"),
        ("train-images-idx3-ubyte", idx((20, 28, 28))[:1000], "bytes of data"),
        ("train-labels-idx1-ubyte", idx((12,)), "12 labels for 20 images"),
        ("t10k-labels-idx1-ubyte", idx((5,), bytes([1, 2, 3, 10, 4])), "label 10"),
        ("t10k-images-idx3-ubyte", idx((5, 28)), "dimensions"),
    ],
)
def test_malformed_mnist_files_are_one_line_naming_the_file(tmp_path, file, content, needle):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(idx((20, 28, 28)))
    (folder / "train-labels-idx1-ubyte").write_bytes(idx((20,)))
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx((5, 28, 28)))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx((5,)))
    (folder / file).write_bytes(content)
    rejected(["dataset=mnist", f"dataset.mnist_dir={folder}", "dataset.n_train=5"], needle, file)


# 15 ------------------------------------------------------------------------------------------------
def test_a_corrupt_summary_is_one_line_for_train_summarize_and_reproduce(run, tmp_path):
    from grokking.sweep_summary import job_rows

    out = tmp_path / "r"
    run(TINY, out)
    (out / "summary.json").write_text('{"status": "compl')
    with pytest.raises(ConfigError, match="summary.json cannot be read"):
        run(TINY, out)
    assert job_rows(out)[0]["status"] == "unreadable summary"
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import reproduce
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert reproduce.status(out) is None  # handed to train.py, which refuses it in one line


def test_reproduce_and_summarize_reject_bad_arguments_in_one_line(tmp_path):
    for jobs in ("0", "-1"):
        one_error_line(cli(["fig1", "--jobs", jobs], script="scripts/reproduce.py"), f"--jobs {jobs}")
    sweep = tmp_path / "sweep"
    job = sweep / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- optimizer.lr=0.1\n")
    res = cli([str(sweep), "--x", "nosuchkey"], script="scripts/summarize.py")
    one_error_line(res, "--x nosuchkey", "optimizer.lr")


def test_a_file_shaped_or_unwritable_run_directory_is_one_line(run, tmp_path):
    shaped = tmp_path / "file"
    shaped.write_text("not a directory")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        run(TINY, shaped)
    with pytest.raises(ConfigError, match="cannot be created"):
        run(TINY, shaped / "run")
    one_error_line(cli([*TINY, "device=cpu", f"hydra.run.dir={shaped}"]), str(shaped))
    unwritable = tmp_path / "unwritable"
    (unwritable / ".lock").mkdir(parents=True)  # the lock file cannot be opened for writing, even by root
    with pytest.raises(ConfigError, match="is a directory where the run keeps its .lock file"):
        run(TINY, unwritable)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_run_directory_is_one_line(run, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot be written"):
            run(TINY, out)
    finally:
        out.chmod(0o700)


# 16 ------------------------------------------------------------------------------------------------
def test_figures_on_partial_results_draw_what_exists_and_write_the_claims(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "fig8" / "baseline", results / "fig8" / "baseline")
    (results / "fig10" / "sgd").mkdir(parents=True)
    (results / "fig10" / "sgd" / "metrics.csv").write_text("")  # 0 bytes
    (results / "fig14" / "no_wd").mkdir(parents=True)
    (results / "fig14" / "no_wd" / "metrics.csv").write_text("0.1,0.2\n0.3,0.4\n")  # no header
    out, claims = tmp_path / "figures", tmp_path / "CLAIMS.md"
    res = cli(["--results", str(results), "--out", str(out), "--claims", str(claims)], script="scripts/figures.py")
    assert res.returncode == 0, res.stderr
    scripts = sorted(p.stem.removeprefix("plot_") for p in (ROOT / "scripts").glob("plot_*.py"))
    for name in scripts:
        assert (out / f"{name}.png").stat().st_size > 1000, name
    last = claims.read_text().strip().splitlines()[-1]
    assert " missing" in last and " hold, " in last


# 17 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override,needles",
    [
        ("epochs=many", ["epochs=many is not valid", "Integer"]),
        ("model.depht=2", ["model.depht is not a key", "did you mean model.depth"]),
        ("optimizer.betas=abc", ["optimizer.betas=abc is not valid"]),
        ("epochs=[", ["epochs=[ cannot be parsed"]),
    ],
)
def test_hydra_errors_are_the_projects_one_error_line(tmp_path, override, needles):
    one_error_line(cli([override, f"hydra.run.dir={tmp_path / 'r'}"]), *needles)


# 18 ------------------------------------------------------------------------------------------------
def test_a_crafted_late_state_in_the_cache_cannot_run_code(tmp_path, monkeypatch, capsys):
    from reproduction import late_states

    monkeypatch.setenv("GROKKING_LATE_CACHE", str(tmp_path / "late"))
    overrides = ["dataset.modulus=23", "model.width=32", "device=cpu"]
    folder = tmp_path / "late" / late_states.key(overrides, [0])
    folder.mkdir(parents=True)
    with open(folder / "3.pt", "wb") as f:
        pickle.dump({"model": Exploit(), "optimizer": {}}, f, protocol=2)
    assert late_states.cached_state(overrides, 3) is None
    assert not MARKER.exists()
    state = late_states.late_state(overrides, 3, verbose=False)  # trained afresh: the crafted file is skipped
    assert not MARKER.exists() and state["epoch"] == 3
    assert "ignoring" in capsys.readouterr().err
    assert late_states.cached_state(overrides, 3)["epoch"] == 3  # a real state loads with weights_only=True


def test_no_file_is_loaded_with_weights_only_false():
    sources = [p for d in ("grokking", "reproduction", "scripts") for p in (ROOT / d).rglob("*.py")]
    assert sources and not [p for p in sources if "weights_only=False" in p.read_text()]


# 19 ------------------------------------------------------------------------------------------------
def interrupted_run(run, out):
    """A run that checkpointed at epoch 4 of 6 and was then stopped (no summary, as after kill -9)."""
    run([*TINY, "checkpoint_every=4"], out)
    (out / "summary.json").unlink()
    return out / "checkpoint.pt"


def test_a_checkpoint_with_flipped_bytes_is_refused_and_kept(run, tmp_path):
    ckpt = interrupted_run(run, tmp_path / "r")
    data = bytearray(ckpt.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    ckpt.write_bytes(bytes(data))
    with pytest.raises(ConfigError) as info:
        run(TINY, tmp_path / "r")
    assert "is corrupt" in str(info.value) and "checksum" in str(info.value) and "\n" not in str(info.value)
    assert ckpt.read_bytes() == bytes(data)  # kept as it was


def full_disk_after(monkeypatch, name: str, writes: int):
    """The disk fills up after ``writes`` more writes of the run's file ``name``: the next one stops halfway."""
    import errno

    import grokking.checkpoint as checkpoint

    real, left = checkpoint.write_bytes, [writes]

    def write_bytes(path, data):
        if path.name != f"{name}.tmp":
            return real(path, data)
        if left[0] == 0:
            path.write_bytes(bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        left[0] -= 1
        real(path, data)

    monkeypatch.setattr(checkpoint, "write_bytes", write_bytes)


def test_a_full_disk_is_one_line_that_keeps_the_last_checkpoint_and_no_temporary_file(run, tmp_path, monkeypatch):
    from grokking.checkpoint import RunFileError

    out = tmp_path / "r"
    full_disk_after(monkeypatch, "checkpoint.pt", 1)  # the checkpoint at epoch 2 is written, the one at 4 fails
    with pytest.raises(RunFileError) as info:
        run([*TINY, "checkpoint_every=2"], out)
    assert "checkpoint.pt cannot be written (No space left on device)" in str(info.value)
    assert "\n" not in str(info.value)
    assert not list(out.glob("*.tmp"))
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 2
    monkeypatch.undo()
    summary, _ = run([*TINY, "checkpoint_every=2"], out)  # the rerun resumes from it
    assert summary["status"] == "completed" and [s["from_epoch"] for s in summary["stretches"]] == [0, 2]


def test_a_full_disk_when_the_summary_is_written_is_one_line(run, tmp_path, monkeypatch):
    from grokking.checkpoint import RunFileError

    full_disk_after(monkeypatch, "summary.json", 0)
    with pytest.raises(RunFileError, match="summary.json cannot be written"):
        run(TINY, tmp_path / "r")
    assert not list((tmp_path / "r").glob("*.tmp")) and not (tmp_path / "r" / "summary.json").exists()


@pytest.mark.slow
def test_a_full_disk_is_one_line_on_the_command_line(tmp_path):
    """The same through train.py: a sitecustomize fills the disk at the second checkpoint write."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import errno, os\n"
        "import grokking.checkpoint as c\n"
        "real, seen = c.write_bytes, []\n"
        "def write_bytes(path, data):\n"
        "    seen.append(path.name)\n"
        "    if seen.count('checkpoint.pt.tmp') == 2:\n"
        "        path.write_bytes(b'half')\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))\n"
        "    real(path, data)\n"
        "c.write_bytes = write_bytes\n"
    )
    out = tmp_path / "r"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *TINY, "checkpoint_every=2", "device=cpu", f"hydra.run.dir={out}"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    last_error_line(res, "checkpoint.pt cannot be written (No space left on device)")
    assert not list(out.glob("*.tmp")) and torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 2


# 20 ------------------------------------------------------------------------------------------------
def test_a_directory_of_the_users_own_files_is_refused_and_left_as_it_was(run, tmp_path):
    out = tmp_path / "mine"
    (out / ".hydra").mkdir(parents=True)
    (out / "config.yaml").write_text("my: own settings\n")
    (out / ".hydra" / "config.yaml").write_text("another: program\n")
    with pytest.raises(ConfigError, match="holds files that are not a run of this project") as info:
        run(TINY, out)
    assert "config.yaml" in str(info.value) and ".hydra" in str(info.value)
    assert sorted(p.name for p in out.rglob("*")) == [".hydra", "config.yaml", "config.yaml"]
    assert (out / "config.yaml").read_text() == "my: own settings\n"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"not a run of this project \(todo.txt\)"):
        run(TINY, tmp_path / "notes")


def test_a_run_of_ours_and_what_scripts_put_beside_it_are_accepted(run, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "train.log").write_text("reproduce.py's log of the run\n")  # written before train.py starts
    run([*TINY, "epochs=4", "checkpoint_every=2"], out)
    (out / "summary.json").unlink()
    (out / "checkpoint.pt.tmp").write_bytes(b"left by a kill -9 during a write")
    summary, _ = run(TINY, out)
    assert summary["status"] == "completed"


def test_the_current_directory_is_refused(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="is the current directory"):
        run(TINY, Path("."))
    assert not list(tmp_path.iterdir())


def test_a_dangling_symlink_run_directory_says_so(run, tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="is a symbolic link to .*nowhere, which does not exist"):
        run(TINY, tmp_path / "link")


@pytest.mark.parametrize("name", ["metrics.csv", "checkpoint.pt", "summary.json", "config.yaml"])
def test_a_run_file_that_is_a_directory_is_refused_before_training(run, tmp_path, monkeypatch, name):
    out = tmp_path / "r"
    (out / name).mkdir(parents=True)
    monkeypatch.setattr(train_module, "build_dataset", lambda cfg: pytest.fail("trained"))
    with pytest.raises(ConfigError, match=f"{name} is a directory where the run keeps its {name} file"):
        run(TINY, out)


def test_a_previous_that_is_a_file_is_one_line_with_overwrite(run, tmp_path):
    out = tmp_path / "r"
    run(TINY, out)
    (out / ".previous").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"\.previous is a file where the run keeps its \.previous/ folder"):
        run([*TINY, "overwrite=true"], out)
    assert (out / "summary.json").is_file()


def test_a_diverged_run_is_not_offered_extend(run, tmp_path):
    out = tmp_path / "d"
    run(DIVERGES, out)
    with pytest.raises(ConfigError) as info:
        run(DIVERGES, out)
    assert "overwrite=true" in str(info.value) and "extend" not in str(info.value)
    run(TINY, tmp_path / "c")
    with pytest.raises(ConfigError, match="extend=true with more epochs"):
        run(TINY, tmp_path / "c")


@pytest.mark.parametrize(
    "status,needle", [(5, "invalid status 5"), ("done", "invalid status 'done'"), (None, "no status")]
)
def test_a_summary_with_an_invalid_status_says_so(run, tmp_path, status, needle):
    import json

    out = tmp_path / "r"
    run(TINY, out)
    (out / "summary.json").write_text(json.dumps({} if status is None else {"status": status}))
    with pytest.raises(ConfigError, match=needle):
        run(TINY, out)


@pytest.mark.slow
def test_run_directories_refused_on_the_command_line_are_left_untouched(tmp_path):
    mine = tmp_path / "mine"
    (mine / ".hydra").mkdir(parents=True)
    (mine / "config.yaml").write_text("my: own settings\n")
    one_error_line(cli([*TINY, "device=cpu", f"hydra.run.dir={mine}"]), "not a run of this project")
    assert sorted(p.name for p in mine.rglob("*")) == [".hydra", "config.yaml"]  # no train.log, no .hydra record
    empty = tmp_path / "cwd"
    empty.mkdir()
    one_error_line(cli([*TINY, "device=cpu", "hydra.run.dir="], cwd=empty), "hydra.run.dir is empty")
    assert not list(empty.iterdir())
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    one_error_line(cli([*TINY, "device=cpu", f"hydra.run.dir={tmp_path / 'link'}"]), "symbolic link", "does not exist")


@pytest.mark.slow
def test_a_read_only_file_system_is_one_line_also_for_a_rerun(tmp_path):
    """A real read-only mount (root only: EROFS holds even for root); Hydra's log file is not opened."""
    fs = tmp_path / "fs"
    fs.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(fs)]).returncode:
        pytest.skip("needs to mount a file system")
    try:
        out = fs / "r"
        assert cli([*TINY, "device=cpu", f"hydra.run.dir={out}"]).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        one_error_line(cli([*TINY, "device=cpu", f"hydra.run.dir={out}"]), "Read-only file system")
        one_error_line(cli([*TINY, "device=cpu", f"hydra.run.dir={fs / 'new'}"]), "Read-only file system")
    finally:
        subprocess.run(["umount", str(fs)])


# 21 ------------------------------------------------------------------------------------------------
def results_with_a_damaged_run(tmp_path) -> Path:
    """fig8/baseline with its five replicates, replicate 0's metrics.csv emptied (summary: completed),
    in a folder not named results (``--plan --out`` once labelled replicate 0 with the folder's name)."""
    results = tmp_path / "my_runs"
    shutil.copytree(ROOT / "results" / "fig8" / "baseline", results / "fig8" / "baseline")
    for k in range(1, 5):
        src = ROOT / "results" / "replicates" / str(k) / "fig8" / "baseline"
        shutil.copytree(src, results / "replicates" / str(k) / "fig8" / "baseline")
    (results / "fig8" / "baseline" / "metrics.csv").write_text("")
    return results


def test_a_damaged_result_is_named_left_out_of_n_and_its_replicates_still_drawn(tmp_path):
    from reproduction import results as read

    results = results_with_a_damaged_run(tmp_path)
    assert [(p.relative_to(results).as_posix(), why) for p, why in read.damaged_runs(results)] == [
        ("fig8/baseline", "metrics.csv does not parse")
    ]
    warning = read.damage_warning(results)
    assert "1 damaged run excluded from n" in warning and "fig8/baseline (metrics.csv does not parse)" in warning
    assert not read.completed(results / "fig8" / "baseline")  # claims read it as missing: n = 4
    finished = [r for r in read.replicates(results) if read.exists("fig8", "baseline", r)]
    assert [r.index for r in finished] == [1, 2, 3, 4]
    pooled = read.metrics("fig8", "baseline", results)  # the figure draws the other four replicates
    assert sorted(pooled.replicate.unique()) == [1, 2, 3, 4]
    (results / "replicates" / "2" / "fig8" / "baseline" / "summary.json").write_text('{"status": 5}')
    assert len(read.damaged_runs(results)) == 2 and "invalid" not in read.damage_warning(results)


def test_a_damaged_result_is_marked_in_its_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from reproduction import plotting
    from reproduction import results as read

    results = results_with_a_damaged_run(tmp_path)
    read.MET_DAMAGED.clear()
    read.metrics("fig8", "baseline", results)
    fig, axes = plotting.panels(1)
    plotting.save(fig, "damaged", tmp_path / "figures")
    marks = [t.get_text() for t in fig.texts]
    assert marks == ["damaged, left out: fig8/baseline (metrics.csv does not parse)"] and not read.MET_DAMAGED


def test_a_damaged_result_is_planned_again_with_its_replicate(tmp_path):
    results = results_with_a_damaged_run(tmp_path)
    res = cli(["fig8", "--only", "baseline", "--plan", "--out", str(results)], script="scripts/reproduce.py")
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line.startswith("fig8/")]
    assert rows and rows[0][:3] == ["fig8/baseline", "(damaged)", "0"], res.stdout


def test_the_claims_report_warns_of_damaged_runs():
    from reproduction.claims import report

    text = report([], warning="**Warning:** 1 damaged run excluded from n")
    assert text.strip().splitlines()[-1] == "**Warning:** 1 damaged run excluded from n"


# 22 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arg", ["~optimizer", "dataset=null", "~model=mlp"])
def test_removing_a_group_every_run_needs_is_one_line(arg):
    from grokking.cli import check_group_overrides

    line = check_group_overrides([arg])
    assert line.startswith(f"{arg} would leave the run without the ") and "choose one of: " in line
    assert check_group_overrides(["launcher=null", "experiment=null", "seeds=null"]) is None


def test_the_memory_refusal_names_the_setting_that_causes_it():
    with pytest.raises(ConfigError) as info:
        validate(to_config(compose(["device=cpu", "model.width=100000000"]))[0])
    assert str(info.value).startswith("model.width=100000000 needs about"), str(info.value)
    rejected(["dataset.modulus=100000"], "dataset.modulus=100000 needs about")


@pytest.mark.slow
@pytest.mark.parametrize("arg", ["~optimizer", "dataset=null"])
def test_removing_a_group_every_run_needs_is_one_line_on_the_command_line(tmp_path, arg):
    one_error_line(cli([arg, f"hydra.run.dir={tmp_path / 'r'}"]), arg)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0, 1.5, 2.0, 2.5, 3.5, 5.0])
def test_ctrl_c_while_starting_is_one_line_and_exit_130(tmp_path, delay):
    import signal
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = [*TINY, "epochs=100000", "device=cpu", "cpu_kernel=torch", f"hydra.run.dir={tmp_path / 'r'}"]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as at a terminal (not ignored)
    )  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("train:")]
    assert len(lines) == 1 and (lines[0].startswith("error: interrupted") or "rerun the same command" in lines[0]), err
