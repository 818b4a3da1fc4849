"""The loop's per-epoch hooks and after-update columns are registered entries like every other column."""

import pandas as pd
import pytest
import torch

from grokking.cli import compose
from grokking.errors import ConfigError
from grokking.hooks import HOOKS, Epoch, Hook, build_hooks
from grokking.metrics import COLUMNS
from grokking.run_dir import RunDir
from grokking.train import to_config

TINY = ["dataset.modulus=23", "model.width=16", "epochs=6", "log_every=2", "checkpoint_every=0"]


def test_a_registered_hook_sees_every_epoch_before_its_step_and_can_switch_the_intervention_on(run):
    seen = []

    class Recorder(Hook):
        def before_step(self, epoch: Epoch) -> None:
            seen.append((epoch.index, epoch.intervene, torch.cat([p.detach().flatten() for p in epoch.params])))

    HOOKS.register("recorder", lambda cfg, run_dir: Recorder())
    try:
        summary, _ = run([*TINY, "sc_intervention_epoch=3"])
    finally:
        HOOKS.unregister("recorder")
    assert summary["status"] == "completed"
    # registered after the intervention: it sees the step's options as the intervention set them
    assert [(i, on) for i, on, _ in seen] == [(0, False), (1, False), (2, False), (3, True), (4, True), (5, True)]
    assert not torch.equal(seen[0][2], seen[1][2])  # the parameters before each step, not after it


def test_hooks_are_built_only_where_the_config_asks_for_them():
    class Run:
        snapshots: list = []

    names = lambda overrides: [type(h).__name__ for h in build_hooks(to_config(overrides)[0], Run())]  # noqa: E731

    assert names(compose(TINY)) == []
    assert names(compose([*TINY, "snapshot_every=2", "sc_intervention_epoch=3"])) == ["Snapshots", "Intervention"]


def test_absorbed_fraction_is_a_column_measured_after_the_update(run):
    assert COLUMNS["absorbed_fraction"].after_update and not COLUMNS["parameters"].after_update
    _, out = run(TINY)
    columns = list(pd.read_csv(out / "metrics.csv").columns)
    assert columns[-1] == "absorbed_fraction"


def test_a_run_directory_refuses_before_it_yields(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    _, cfg_dict = to_config(compose(TINY))
    with pytest.raises(ConfigError, match="not a run of this project"):
        with RunDir.open(tmp_path, cfg_dict, overwrite=False, extend=False):
            pytest.fail("accepted a directory of someone else's files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
