"""``python -m grokking [overrides]`` and the ``grokking-train`` command: the same as ``python train.py``
in the checkout, from any directory. Training needs the ``train`` extra (``pip install
'grokking[train]'``); without it this says so in one line instead of an import traceback."""

from __future__ import annotations

import re
import sys
from importlib import metadata


def missing_requirements(extra: str) -> list[str]:
    """The distributions that the installed package's ``extra`` requires and this environment lacks
    (read from the package's own metadata; none for a source tree that is not installed)."""
    try:
        requires = metadata.requires("grokking") or []
    except metadata.PackageNotFoundError:
        return []
    missing = []
    for requirement in requires:
        spec, _, marker = requirement.partition(";")
        if not re.search(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]", marker):
            continue
        name = re.match(r"[A-Za-z0-9._-]+", spec.strip()).group(0)
        if name == "grokking":  # an extra that includes another (grokking[train]) lists it again
            continue
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def main() -> None:
    if missing := missing_requirements("train"):
        print(
            f"error: training needs the train extra (missing: {', '.join(missing)}): pip install 'grokking[train]' "
            "(in a checkout: pip install -e '.[train]')",
            file=sys.stderr,
        )
        sys.exit(2)
    from grokking.train import main as train

    train()


if __name__ == "__main__":
    main()
