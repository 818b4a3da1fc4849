"""Time-to-generalize statistics of runs that may never generalize.

A run that reaches a test-accuracy threshold at epoch t is an *event* at t. A run that never does
within its budget of B epochs is *censored* at B: all we know is that its time exceeds B. Dropping
such runs, or counting them as B, biases the median down. The Kaplan–Meier estimator uses them
properly: S(t), the share of runs not yet generalized after t epochs, falls only at events, and
each censored run leaves the risk set when it is censored. The median is the first t with
S(t) ≤ 0.5 (the midpoint of two event times where S is exactly 0.5 between them, as for an ordinary
median); when S never falls to 0.5 within the budgets, the median is only known to exceed the
largest budget. Without censoring this is the ordinary sample median.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0


def km_median(times: Sequence[float], events: Sequence[bool]) -> float:
    """Kaplan–Meier median of ``times`` (event time, or censoring time where ``events`` is False);
    ``math.inf`` when the survival curve never falls to 0.5."""
    order = sorted(zip(times, events), key=lambda te: (te[0], not te[1]))  # events before censorings at a tie
    at_risk, survival = len(order), 1.0
    distinct = sorted({t for t, e in order if e})
    i = 0
    for k, t in enumerate(distinct):
        while i < len(order) and order[i][0] < t:  # censored before t: leave the risk set
            at_risk -= 1
            i += 1
        deaths = sum(1 for tt, e in order[i:] if tt == t and e)
        survival *= 1 - deaths / at_risk
        at_risk -= sum(1 for tt, _ in order[i:] if tt == t)
        i += sum(1 for tt, _ in order[i:] if tt == t)
        if math.isclose(survival, 0.5, rel_tol=0, abs_tol=1e-12):
            return (t + distinct[k + 1]) / 2 if k + 1 < len(distinct) else float(t)
        if survival < 0.5:
            return float(t)
    return math.inf


def censored_summary(
    times: Sequence[int | None],
    budgets: Sequence[int],
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """Median epochs to a threshold over replicate runs, its bootstrap 95 % interval and the share
    that reached it. ``times[i]`` is the epoch run i reached the threshold, None if it never did
    within its budget ``budgets[i]`` (censored there). The interval resamples runs with replacement
    (``n_bootstrap`` times, a fixed ``seed``) and takes the 2.5 / 97.5 % quantiles of the resampled
    Kaplan–Meier medians, ``inf`` where more than half of a resample is censored."""
    if len(times) != len(budgets) or not times:
        raise ValueError("times and budgets need one entry per run, at least one run")
    t = np.array([b if x is None else x for x, b in zip(times, budgets)], dtype=float)
    e = np.array([x is not None for x in times])
    median = km_median(t, e)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(t), size=(n_bootstrap, len(t)))
    boot = np.array([km_median(t[i], e[i]) for i in idx])
    low, high = np.quantile(boot, [0.025, 0.975], method="inverted_cdf")
    finite = math.isfinite(median)
    return {
        "n": len(t),
        "n_generalized": int(e.sum()),
        "share": float(e.mean()),
        "median": median if finite else None,
        "median_text": f"{median:.0f}" if finite else f"> {max(budgets)}",
        "ci_low": float(low),
        "ci_high": float(high),
    }
