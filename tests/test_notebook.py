"""notebooks/walkthrough.ipynb is stored without outputs and runs headlessly against a tiny run."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_notebook_executes_on_a_tiny_run(run, monkeypatch):
    summary, out = run(["dataset.modulus=23", "model.width=32", "epochs=20", "log_every=5", "seeds=[0,1]"])
    monkeypatch.setenv("GROKKING_RUN_DIR", str(out))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows the figures
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert str(out) in printed and "train accuracy:" in printed
    assert sum(o.output_type == "display_data" for c in nb.cells for o in c.get("outputs", [])) >= 2  # the figures
