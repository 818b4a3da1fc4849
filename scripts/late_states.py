"""Training states after Softmax Collapse, cached for timing late epochs.

    python scripts/late_states.py [TEXT]   # produce every late state the benchmark times (whose name holds TEXT)

A thin entry point: the code and its documentation are in ``reproduction/late_states.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reproduction.late_states import main  # noqa: E402

if __name__ == "__main__":
    main()
