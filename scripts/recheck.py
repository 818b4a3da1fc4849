"""Hold committed runs made by older code against re-runs of the same replicate on the current code.

    python scripts/recheck.py results/verification/exact_sum          # replicate 1, writes RECHECK.md there
    python scripts/recheck.py DIR --replicate 2 --out /tmp/recheck.md

A thin entry point: the code and its documentation are in ``reproduction/recheck.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reproduction.recheck import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
