"""The paper's released code at fixed-720d244, found and imported by :mod:`reproduction.official_snapshot`,
for tests that compare against it; such a test is skipped where the snapshot is absent."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from reproduction.official_snapshot import FIXED, snapshot_dirs
from reproduction.official_snapshot import load as load_snapshot


def official_dir() -> Path:
    """fixed-720d244's folder; skips the test where it is not found."""
    found, why = snapshot_dirs()
    if FIXED not in found:
        pytest.skip(why or f"the official snapshot {FIXED} is not among those found ({', '.join(found)})")
    return found[FIXED]


def load(name: str) -> types.ModuleType:
    """fixed-720d244's module ``name`` (``utils``, ``orthograd``, ...), imported unmodified."""
    official_dir()
    return getattr(load_snapshot(FIXED), name)
