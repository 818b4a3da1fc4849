"""Summarize a sweep into one table and plot, e.g. `python scripts/summarize.py multirun/2025-01-01/12-00-00`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grokking.sweep_summary import main  # noqa: E402

if __name__ == "__main__":
    main()
