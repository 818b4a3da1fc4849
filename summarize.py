"""Summarize a sweep into one table and plot, e.g. `python summarize.py multirun/2025-01-01/12-00-00`."""

from grokking.sweep_summary import main

if __name__ == "__main__":
    main()
