"""The wall reading (issue 20): where the loss on fixed batches climbs back up, a fixed distance lower.

The range test's own curve is the loss of a *different* training batch at every step, smoothed by a lagging EMA;
the old default (``stable``) read a kink of it (the onset of the final rise) and jumped between kinks from run to
run (0.3-0.8 decades between finder seeds). This reading changes both the measurement and the feature:

* **the measurement**: after every optimizer step the finder evaluates the loss on the same few batches
  (``probe_losses``, forward only, no gradient, a fixed RNG so dropout draws the same masks): no batch-to-batch
  sampling noise, only what the weights did (torch-lr-finder's ``val_loader`` mode and neural_prophet's held-out
  sweeps are the precedent; fresh batches each step stay noisy, titu1994/keras-one-cycle #27);
* **the feature**: a level crossing of the whole curve, not a kink. The curve is smoothed without lag (a running
  median of 5 points, then a Gaussian kernel of ``SMOOTH_DECADES`` in log-LR, centred); ``start`` is its level over
  the first ``START_POINTS`` points, ``floor`` its lowest point after them; the **wall** is the first LR past the
  floor where the curve has climbed back ``WALL_LEVEL`` of the way from the floor to the start (at least
  ``WALL_NOISE_SIGMAS`` noise sigmas above the floor, so a flat curve reads its blow-up, not its noise), found by
  linear interpolation between points. The suggestion is ``WALL_DECADES_BELOW`` decades below the wall. A crossing
  uses the steepest part of the curve, where a change of level moves the LR least.

Measured in ``docs/suggestion.md`` ("Issue 20"): the knobs were chosen on the design tasks of the benchmarks
(spread over 5 finder seeds and grid gap) and checked on hold-out tasks committed before they were measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Fraction of the way from the floor back up to the start where the wall is read (0.1..0.5 did about as well on
# the design tasks; lower levels moved less between seeds).
WALL_LEVEL = 0.25
# Distance from the wall down to the suggestion, in decades (0.6..0.8 did about as well on the design tasks).
WALL_DECADES_BELOW = 0.75
# Width (standard deviation, in decades of LR) of the centred Gaussian smoothing.
SMOOTH_DECADES = 0.1
# Points that set the start level (the curve before the LR does anything).
START_POINTS = 10
# The wall must stand this many noise sigmas (of the raw curve around the smoothed one) above the floor.
WALL_NOISE_SIGMAS = 3.0
# The band: the wall read at these levels, widened by the run-to-run spread measured on the design tasks
# (a band so built held another finder seed's answer 93 % of the time there).
BAND_LEVELS = (0.1, 0.6)
BAND_DECADES = 0.15


@dataclass(frozen=True)
class WallReading:
    """What the wall reading found, in LR (not log): the suggestion, its band and the features it came from."""

    lr: float
    low: float
    high: float
    wall_lr: float
    floor_lr: float
    rose: bool  # False: the curve never climbed back to the level (the wall is the last point: a lower bound)


def centred_smooth(log_lrs: np.ndarray, losses: np.ndarray, width: float = SMOOTH_DECADES) -> np.ndarray:
    """Zero-lag smoothing: running median of 5 points, then a Gaussian kernel of ``width`` decades in log-LR."""
    n = losses.size
    median = np.array([np.median(losses[max(0, i - 2) : i + 3]) for i in range(n)])
    weights = np.exp(-0.5 * ((log_lrs[:, None] - log_lrs[None, :]) / width) ** 2)
    return weights @ median / weights.sum(axis=1)


def _crossing(x: np.ndarray, smooth: np.ndarray, floor: int, level: float) -> tuple[float, bool]:
    """First log-LR past ``floor`` where ``smooth`` reaches ``level`` (interpolated); the last point if never."""
    above = np.flatnonzero(smooth[floor:] >= level)
    if above.size == 0:
        return float(x[-1]), False
    j = floor + int(above[0])
    if j == floor or smooth[j] == smooth[j - 1]:
        return float(x[j]), True
    return float(x[j - 1] + (level - smooth[j - 1]) / (smooth[j] - smooth[j - 1]) * (x[j] - x[j - 1])), True


def read_wall(
    lrs: np.ndarray,
    losses: np.ndarray,
    *,
    level: float = WALL_LEVEL,
    decades_below: float = WALL_DECADES_BELOW,
) -> WallReading | None:
    """The wall reading of a curve of finite losses at increasing positive LRs; None with too few points.

    Non-finite losses (the point where training broke) count as far above everything else.
    """
    lrs = np.asarray(lrs, dtype=float)
    losses = np.asarray(losses, dtype=float)
    if lrs.size < START_POINTS + 3:
        return None
    finite = np.isfinite(losses)
    if not finite.any():
        return None
    top = float(np.max(np.abs(losses[finite])))
    losses = np.where(finite, losses, 10.0 * top + 1.0)
    x = np.log10(lrs)
    smooth = centred_smooth(x, losses)
    start = float(np.median(smooth[:START_POINTS]))
    floor = START_POINTS + int(np.argmin(smooth[START_POINTS:]))
    resid = (losses - smooth)[finite]
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))

    def wall_at(q: float) -> tuple[float, bool]:
        rise = max(q * (start - smooth[floor]), WALL_NOISE_SIGMAS * noise)
        return _crossing(x, smooth, floor, smooth[floor] + rise)

    wall, rose = wall_at(level)
    low, high = (wall_at(q)[0] for q in BAND_LEVELS)
    return WallReading(
        lr=float(10 ** (wall - decades_below)),
        low=float(10 ** (min(low, wall) - decades_below - BAND_DECADES)),
        high=float(10 ** (max(high, wall) - decades_below + BAND_DECADES)),
        wall_lr=float(10**wall),
        floor_lr=float(lrs[floor]),
        rose=rose,
    )
