"""Speed benchmark: ms per epoch of the paper's settings against the machine's float32 matmul floor.

    python scripts/bench.py                 # full benchmark (a few minutes), writes results/bench.csv
    python scripts/bench.py --late          # only the late-state settings (make bench-late)
    python scripts/bench.py --smoke --out /tmp/bench.csv   # seconds; what the test suite runs

A thin entry point: the code and its documentation are in ``reproduction/bench.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reproduction.bench import main  # noqa: E402

if __name__ == "__main__":
    main()
