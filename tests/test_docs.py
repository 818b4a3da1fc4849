"""The README stays a five-minute read, and every relative link in it and in docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_the_configuration_table_names_every_option_of_every_group():
    """Each group's row in docs/configuration.md lists its YAML options and its registry's names."""
    from grokking.cli import group_options
    from grokking.data import DATASETS
    from grokking.losses import LOSSES
    from grokking.models import MODELS
    from grokking.optim import OPTIMIZERS
    from grokking.tracking import TRACKERS

    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(\w+)` \| (.*?) \|", (ROOT / "docs" / "configuration.md").read_text(), re.M)
    }
    registries = {"dataset": DATASETS, "model": MODELS, "loss": LOSSES, "optimizer": OPTIMIZERS, "logger": TRACKERS}
    for group in ("dataset", "model", "loss", "optimizer", "precision", "logger", "launcher"):
        names = set(group_options(group)) | set(registries[group].names() if group in registries else ())
        missing = [n for n in sorted(names) if f"`{n}`" not in rows[group]]
        assert not missing, f"docs/configuration.md's {group} row does not name {missing}"
