"""What a claim measures: named measures in one registry, ``MEASURES`` (name -> function).

Each claim row of an experiment manifest (``reproduction/experiments/``) names a measure and its arguments in each row;
``MEASURES[name](*args)`` gives ``measure(root) -> float | None``, our value on one replicate.
Register a new one with ``@measure("name")`` (``reproduction.measures.registry``) in

- ``runs.py``: measures on one run, shared by many figures (final accuracy, accuracy at an epoch, onsets, ...);
- ``main_text.py``: one-off measures of Figs. 2, 5 and 6c;
- ``appendix.py``: one-off measures of Figs. 10, 12, 15 and 16.
"""

from reproduction.measures import appendix, main_text, runs  # noqa: F401  (each module registers its measures)
from reproduction.measures.registry import MEASURES, Measure, completed, measure

__all__ = ["MEASURES", "Measure", "completed", "measure"]
