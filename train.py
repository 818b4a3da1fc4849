"""Train one configuration (or a sweep with -m). See README.md; e.g. `python train.py loss=stablemax`."""

import sys

try:
    from grokking.train import main
except KeyboardInterrupt:  # Ctrl-C while starting (importing torch): one line, like Ctrl-C anywhere else
    print("error: interrupted (Ctrl-C) while starting; nothing was run", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    main()
