"""Estimated CPU time to reproduce each paper figure from the runs committed in ``results/``.

    python scripts/figure_times.py            # writes results/figure_times_cpu.csv, prints a table

A thin entry point: the code and its documentation are in ``reproduction/figure_times.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reproduction.figure_times import main  # noqa: E402

if __name__ == "__main__":
    main()
