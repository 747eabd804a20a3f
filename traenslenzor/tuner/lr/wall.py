"""The wall reading: where the loss on fixed batches climbs back up, a fixed distance lower.

The range test's own curve is the loss of a *different* training batch at every step, smoothed by a lagging EMA;
the old default (``stable``) read a kink of it (the onset of the final rise) and jumped between kinks from run to
run (0.3-0.8 decades between finder seeds). This reading changes both the measurement and the feature:

* **the measurement**: after every optimizer step the finder evaluates the loss on the same few batches
  (``probe_losses``, forward only, no gradient, a fixed RNG so dropout draws the same masks): no batch-to-batch
  sampling noise, only what the weights did (torch-lr-finder's ``val_loader`` mode and neural_prophet's held-out
  sweeps are the precedent; fresh batches each step stay noisy, titu1994/keras-one-cycle #27);
* **the feature**: level crossings of the whole curve, not a kink. The curve is smoothed without lag (a running
  median of 5 points, then a Gaussian kernel of ``SMOOTH_DECADES`` in log-LR, centred); ``start`` is its level over
  the first ``START_POINTS`` points, ``floor`` its lowest point after them. The **descent** is the first LR where
  the curve has fallen ``DESCENT_LEVEL`` of the way from the start to the floor; the **wall** the first LR past the
  floor where it has climbed back ``WALL_LEVEL`` of the way (at least ``WALL_NOISE_SIGMAS`` noise sigmas above the
  floor, so a flat curve reads its blow-up, not its noise); both interpolated between points. A crossing uses the
  steepest part of the curve, where a change of level moves the LR least. The suggestion is ``MID_DECADES_BELOW``
  decades below the middle (in log-LR) of descent and wall: two crossings whose run-to-run noise partly cancels.
  Where the curve fell by less than ``MIN_FALL`` of its start (no descent to read: a flat curve), it is
  ``WALL_DECADES_BELOW`` decades below the wall alone.

Measured in ``docs/suggestion.md`` ("The fixed-batch reading"): the knobs were chosen on the design tasks of the
benchmarks (spread over 5 finder seeds and grid gap) and checked on hold-out tasks committed before they were
measured. The default suggestion (``blend``) takes the middle of this reading and ``stable``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Batches set aside by the finder whose loss is measured after every step (forward only). One batch moved 0.25
# decades between seeds on the design tasks (median), four 0.16, eight and sixteen no less: the rest is the trajectory.
PROBE_BATCHES = 4
# The RNG seed of every probe pass, so that dropout draws the same masks each time.
PROBE_SEED = 0
# The probe is measured after every this-many-th optimizer step (the others record none). Every 2nd step read the
# same answers as every step on the benchmarks' recorded curves (gap and spread over 5 finder seeds, docs/suggestion.md)
# at half the probe's cost.
PROBE_EVERY = 2
# Fraction of the way from the floor back up to the start where the wall is read (0.1..0.5 did about as well on
# the design tasks; lower levels moved less between seeds).
WALL_LEVEL = 0.25
# Fraction of the way from the start down to the floor where the descent is read.
DESCENT_LEVEL = 0.5
# Distance from the middle of descent and wall down to the suggestion, in decades.
MID_DECADES_BELOW = 0.4
# Below this fall (as a fraction of the start level) the curve has no descent worth reading: the wall decides.
MIN_FALL = 0.05
# On a curve that never fell (a flat start), the wall must stand this fraction of the start level above the floor:
# a blow-up, not the noise of a flat curve (3 noise sigmas were crossed 1-3 decades early on flat CNN curves).
FLAT_WALL_RISE = 0.1
# Distance from the wall (a blow-up, FLAT_WALL_RISE) down to the suggestion when the wall decides alone, in decades:
# the grid's best sat 1.2-1.8 decades below it on the flat curves of the benchmarks (no design task has one: these
# are hold-outs of earlier rounds, seen since; docs/suggestion.md).
WALL_DECADES_BELOW = 1.45
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


def probe_due(step: int) -> bool:
    """Whether the probe is measured after optimizer step ``step`` (0-based): every ``PROBE_EVERY``-th step."""
    return step % PROBE_EVERY == PROBE_EVERY - 1


@dataclass(frozen=True)
class WallReading:
    """What the wall reading found, in LR (not log): the suggestion, its band and the features it came from."""

    lr: float
    low: float
    high: float
    wall_lr: float
    floor_lr: float
    descent_lr: float | None  # None: the curve fell too little to read a descent (the wall decided alone)
    rose: bool  # False: the curve never climbed back to the level (the wall is the last point: a lower bound)

    @property
    def decided_by(self) -> str:
        """``"descent+wall"`` or ``"wall"`` (a flat curve)."""
        return "wall" if self.descent_lr is None else "descent+wall"


def centred_smooth(log_lrs: np.ndarray, losses: np.ndarray, width: float = SMOOTH_DECADES) -> np.ndarray:
    """Zero-lag smoothing: running median of 5 points, then a Gaussian kernel of ``width`` decades in log-LR."""
    n = losses.size
    median = np.array([np.median(losses[max(0, i - 2) : i + 3]) for i in range(n)])
    # the kernel is cut at 4 widths (weights below 3e-4), so that a long sweep costs n x window, not n x n
    order = np.argsort(log_lrs, kind="stable")
    sorted_x = log_lrs[order]
    smooth = np.empty(n)
    for i in range(n):
        lo, hi = np.searchsorted(sorted_x, [log_lrs[i] - 4 * width, log_lrs[i] + 4 * width], side="left")
        near = order[lo : max(hi, lo + 1)]
        weights = np.exp(-0.5 * ((log_lrs[near] - log_lrs[i]) / width) ** 2)
        smooth[i] = weights @ median[near] / weights.sum()
    return smooth


def _crossing(x: np.ndarray, smooth: np.ndarray, floor: int, level: float) -> tuple[float, bool]:
    """First log-LR past ``floor`` where ``smooth`` reaches ``level`` (interpolated); the last point if never."""
    above = np.flatnonzero(smooth[floor:] >= level)
    if above.size == 0:
        return float(x[-1]), False
    j = floor + int(above[0])
    if j == floor or smooth[j] == smooth[j - 1]:
        return float(x[j]), True
    return float(x[j - 1] + (level - smooth[j - 1]) / (smooth[j] - smooth[j - 1]) * (x[j] - x[j - 1])), True


def _descent(x: np.ndarray, smooth: np.ndarray, floor: int, level: float) -> float:
    """First log-LR up to ``floor`` where ``smooth`` has fallen to ``level`` (interpolated)."""
    j = int(np.flatnonzero(smooth[: floor + 1] <= level)[0])
    if j == 0 or smooth[j] == smooth[j - 1]:
        return float(x[j])
    return float(x[j - 1] + (level - smooth[j - 1]) / (smooth[j] - smooth[j - 1]) * (x[j] - x[j - 1]))


def read_curve(lrs, curve, skip_begin: int, skip_end: int) -> WallReading | None:
    """The wall reading of a recorded curve (e.g. ``probe_losses``, NaN where not measured), its first
    ``skip_begin`` and last ``skip_end`` points left out and non-finite points dropped; None with too few points."""
    stop = len(lrs) - skip_end
    points = [(lr, v) for lr, v in zip(lrs[skip_begin:stop], curve[skip_begin:stop], strict=True) if lr > 0]
    points = [(lr, v) for lr, v in points if math.isfinite(lr) and math.isfinite(v)]
    if not points:
        return None
    return read_wall(*(np.asarray(values) for values in zip(*points, strict=True)))


def read_wall(lrs: np.ndarray, losses: np.ndarray) -> WallReading | None:
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

    fall = start - float(smooth[floor])
    flat = fall < MIN_FALL * abs(start)
    # a curve that never fell has no level to climb back to: its wall is where it blows up, not where it wiggles
    least = FLAT_WALL_RISE * abs(start) if flat else 0.0

    def wall_at(q: float) -> tuple[float, bool]:
        rise = max(q * fall, WALL_NOISE_SIGMAS * noise, least)
        return _crossing(x, smooth, floor, smooth[floor] + rise)

    wall, rose = wall_at(WALL_LEVEL)
    low, high = min(wall_at(BAND_LEVELS[0])[0], wall), max(wall_at(BAND_LEVELS[1])[0], wall)
    if flat:
        descent, answer, half = None, wall - WALL_DECADES_BELOW, 1.0
    else:
        descent = _descent(x, smooth, floor, start - DESCENT_LEVEL * fall)
        answer, half = (descent + wall) / 2 - MID_DECADES_BELOW, 0.5
    # the band: the answer as the wall moves between its BAND_LEVELS readings, widened by BAND_DECADES
    return WallReading(
        lr=float(10**answer),
        low=float(10 ** (answer - half * (wall - low) - BAND_DECADES)),
        high=float(10 ** (answer + half * (high - wall) + BAND_DECADES)),
        wall_lr=float(10**wall),
        floor_lr=float(lrs[floor]),
        descent_lr=None if descent is None else float(10**descent),
        rose=rose,
    )
