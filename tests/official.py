"""The paper's released code (``../shared/official/fixed-720d244``, or ``$GROKKING_OFFICIAL_DIR``), imported
for comparisons only; a test that needs it is skipped where the folder is absent."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = [
    ROOT.parent / "shared" / "official" / "fixed-720d244",
    ROOT.parent.parent / "shared" / "official" / "fixed-720d244",
]


def official_dir() -> Path:
    env = os.environ.get("GROKKING_OFFICIAL_DIR")
    for path in [Path(env)] if env else CANDIDATES:
        if (path / "utils.py").is_file() and (path / "orthograd.py").is_file():
            return path
    pytest.skip(f"the official code is not here ({env or ', '.join(map(str, CANDIDATES))}); set GROKKING_OFFICIAL_DIR")


def load(name: str) -> types.ModuleType:
    """Import ``<official>/<name>.py`` with the folder on sys.path (its modules import each other by
    bare name) and a stub ``torchvision`` (imported by its datasets.py, unused by what we call). Every
    module it adds to sys.modules is removed again, so that names like ``utils`` or ``models`` stay free."""
    folder = official_dir()
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    stub = types.ModuleType("torchvision")
    stub.datasets = types.ModuleType("torchvision.datasets")
    stubs = {"torchvision": stub, "torchvision.datasets": stub.datasets}
    for key, module in stubs.items():
        sys.modules.setdefault(key, module)
    try:
        spec = importlib.util.spec_from_file_location(f"official_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(folder))
        for key in set(sys.modules) - before:
            del sys.modules[key]
