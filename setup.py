"""Packages of the distribution (the rest of its metadata is in pyproject.toml).

The Hydra configs stay at the repository root (``conf/``, read from the checkout by ``python
train.py``) and ship inside the package as ``grokking.conf``, so that an installed ``grokking-train``
finds them from any directory (:mod:`grokking.paths`).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["grokking", "grokking.*", "reproduction", "reproduction.*"]), "grokking.conf"],
    package_dir={"grokking.conf": "conf"},
)
