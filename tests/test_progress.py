"""The training loop's progress display: tqdm's bar in a terminal, whole lines in a parallel sweep's jobs."""

import pytest
import yaml
from omegaconf import OmegaConf, open_dict

from grokking.tracking import ProgressLines, progress


def test_a_parallel_jobs_progress_is_whole_lines_naming_the_job(capsys):
    """One line every ``every`` seconds and one at the end, each ending in a newline: jobs running side
    by side print lines that cannot interleave within a line (tqdm redraws one line with ``\\r``)."""
    now = [0.0]
    bar = ProgressLines(range(100, 200), initial=100, total=200, label="job 3 (seed=1)", every=30, clock=lambda: now[0])
    for epoch in bar:
        now[0] += 1.0  # one epoch per second
        if epoch % 10 == 0:
            bar.set_postfix({"loss": "0.5", "test": f"{epoch / 200:.3f}"}, refresh=False)
    bar.close()
    bar.close()  # closing twice (the loop's finally after an early return) writes nothing more
    err = capsys.readouterr().err
    assert "\r" not in err and err.endswith("\n")
    assert err.splitlines() == [
        "job 3 (seed=1): epoch 130/200 (65 %, 1 epochs/s) loss=0.5 test=0.600",
        "job 3 (seed=1): epoch 160/200 (80 %, 1 epochs/s) loss=0.5 test=0.750",
        "job 3 (seed=1): epoch 190/200 (95 %, 1 epochs/s) loss=0.5 test=0.900",
        "job 3 (seed=1): epoch 200/200 (100 %, 1 epochs/s) loss=0.5 test=0.950",
    ]


@pytest.fixture
def sweep_job(tmp_path):
    """Hydra's config as a job of ``-m launcher=... seed=0,1 epochs=5`` sees it (job 1)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from grokking.cli import CONF_DIR
    from grokking.config import register_configs

    def enter(launcher_target: str):
        register_configs()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=["seed=1", "epochs=5"], return_hydra_config=True)
        task = ["seed=0,1", "epochs=5"]
        (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": task}}}))
        with open_dict(cfg):
            cfg.hydra.mode = RunMode.MULTIRUN
            cfg.hydra.job.num = 1
            cfg.hydra.sweep.dir = str(tmp_path)
            cfg.hydra.launcher = OmegaConf.create({"_target_": launcher_target})
        HydraConfig.instance().set_config(cfg)

    yield enter
    HydraConfig.instance().cfg = None


def test_jobs_of_a_parallel_launcher_print_lines_and_others_keep_the_bar(sweep_job):
    from tqdm.auto import tqdm

    bar = progress(range(5), initial=0, total=5)
    assert isinstance(bar, tqdm)  # a single run
    bar.close()
    sweep_job("hydra._internal.core_plugins.basic_launcher.BasicLauncher")
    bar = progress(range(5), initial=0, total=5)
    assert isinstance(bar, tqdm)  # jobs one after another: one bar at a time
    bar.close()
    sweep_job("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher")
    bar = progress(range(5), initial=0, total=5)
    assert isinstance(bar, ProgressLines) and bar.label == "job 1 (seed=1)"  # the swept override only
    bar.close()
