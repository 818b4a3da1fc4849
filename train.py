"""Train one configuration (or a sweep with -m). See README.md; e.g. `python train.py loss=stablemax`."""

from grokking.train import main

if __name__ == "__main__":
    main()
