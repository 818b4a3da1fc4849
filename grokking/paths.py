"""Where the Hydra configs are: ``conf/`` at the repository root in a checkout (and in an editable
install), ``grokking/conf`` inside an installed wheel, which ships a copy of ``conf/`` as package data
(``setup.py``). So ``python train.py`` from the checkout, ``grokking-train`` and ``python -m grokking``
read the same YAMLs, from any working directory."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The config folder: the copy inside the package when there is one (a wheel), else the
    checkout's ``conf/`` beside the package."""
    shipped = PACKAGE / "conf"
    if (shipped / "config.yaml").is_file():
        return shipped
    return PACKAGE.parent / "conf"


CONF_DIR = conf_dir()
