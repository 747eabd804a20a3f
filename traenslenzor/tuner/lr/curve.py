"""The shape of an LR range-test curve: pure functions of the loss values that the sweep and the advice both read.

A range-test curve is a plateau (LR too small to learn in a few steps), a descent, a valley and a blow-up
(Smith 2015/2017). These functions find its parts: the final valley (``final_valley``), where the final rise
begins (``rise_onset``), how noisy the smoothed curve is (``smoothed_noise``) and whether it turned up at all
(``never_turned_up``). The suggestion rules (``suggestion``), the adaptive range (``adaptive``) and the
diagnostics (``diagnostics``) all read them here, so none of those three imports another for its maths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from traenslenzor.tuner.lr.settings import DEFAULT_SWEEP

# A run of fewer points below the median is a wiggle, not the final valley (see ``final_valley``).
VALLEY_MIN_POINTS = 3
# Calibrated on the 45 real curves of benchmarks/lr_quality.py (docs/suggestion.md): a completed curve that ends
# within this share of its drop above its best never diverged.
MAX_FINAL_RISE = 0.1
# The raw loss turned up when the median of its last RAW_TAIL_POINTS points gave back this share of the smoothed
# curve's fall (half: far more than batch noise on a curve that fell clearly). The EMA lags the raw loss by about
# 1 / (1 - beta) steps, so a blow-up in the last few dozen steps shows in the raw loss only.
RAW_TAIL_POINTS = 5
RAW_RISE_FRACTION = 0.5


def finite(values: Sequence[float]) -> list[float]:
    """The finite values of ``values``, in order."""
    return [v for v in values if math.isfinite(v)]


def final_valley(losses: np.ndarray, min_points: int = VALLEY_MIN_POINTS) -> tuple[int, int] | None:
    """Start and bottom index of the last stretch of the curve that lies below its median loss.

    A range-test curve is a plateau (LR too small to learn in a few steps), a descent, a valley and a blow-up.
    Early points are the least averaged by the EMA (a bias-corrected EMA at step 10 averages ~10 raw losses, at
    step 60 ~40), so on noisy curves the global minimum can be an early dip of the plateau. The descent that
    matters is the one that ends in the blow-up: the last run of points below the median level. Runs shorter than
    ``min_points`` are wiggles, not valleys (e.g. a dip below the median *after* a mild blow-up that levelled off
    below the plateau) and are passed over unless no run is that long. None when no point lies below the median
    (a flat curve).
    """
    below = np.flatnonzero(losses < np.median(losses))
    if below.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(below) > 1)
    runs = list(zip(below[np.r_[0, breaks + 1]], below[np.r_[breaks, below.size - 1]], strict=True))
    long_runs = [run for run in runs if run[1] - run[0] + 1 >= min_points]
    start, end = (long_runs or runs)[-1]
    return int(start), int(start + np.argmin(losses[start : end + 1]))


def smoothed_noise(losses: np.ndarray, beta: float = DEFAULT_SWEEP.beta) -> float:
    """Standard deviation of the noise on a curve smoothed by a ``beta`` EMA, estimated from the curve alone.

    For white noise of std s on the raw loss, the EMA's steps ``d_t = (1 - beta)(raw_t - ema_{t-1})`` have std
    ``(1 - beta) s sqrt(2 / (1 + beta))`` and the EMA itself ``s sqrt((1 - beta) / (1 + beta))``: the smoothed
    curve's noise is ``std(d) / sqrt(2 (1 - beta))`` (5x the step std at beta = 0.98). ``std(d)`` comes from the
    median absolute *second* difference (robust to the blow-up, and a smooth trend cancels), divided by
    ``0.6745 * sqrt(2)`` (the median of |N(0, 2 sigma^2)|). 0 for fewer than 3 points.
    """
    if losses.size < 3:
        return 0.0
    step_std = float(np.median(np.abs(np.diff(losses, 2)))) / (0.6745 * np.sqrt(2.0))
    return step_std / float(np.sqrt(2.0 * (1.0 - beta)))


def rise_onset(losses: np.ndarray, start: int = 0, tolerance: float = 0.0) -> int:
    """The last index from ``start`` on whose loss is within ``tolerance`` of the lowest loss before it.

    That is where the final rise begins: every later point lies clearly above everything before it. Unlike the
    lowest point, it is well defined on a curve that is flat up to noise before it blows up (where the minimum
    is wherever the noise dipped), and on a curve with a clear valley it is the floor or just after it.
    """
    tail = losses[start:]
    within = np.flatnonzero(tail <= np.minimum.accumulate(tail) + tolerance)
    return start + int(within[-1])


def never_turned_up(losses: Sequence[float], raw_losses: Sequence[float]) -> bool:
    """Whether neither the smoothed nor the raw loss rose again after its fall (checked on both curves).

    Smoothed: its last point lies within ``MAX_FINAL_RISE`` of its fall above its best. Raw: the median of its
    last ``RAW_TAIL_POINTS`` points lies within ``RAW_RISE_FRACTION`` of that fall above the smoothed best. A
    non-finite raw loss is a blow-up.
    """
    smoothed = finite(losses)
    if len(smoothed) < 2 or len(finite(raw_losses)) < len(raw_losses):
        return False
    best = min(smoothed)
    drop = max(0.0, smoothed[0] - best)
    if smoothed[-1] - best > MAX_FINAL_RISE * max(drop, 1e-12):
        return False
    tail = float(np.median(raw_losses[-RAW_TAIL_POINTS:]))
    return tail - best <= RAW_RISE_FRACTION * max(drop, 1e-12)
