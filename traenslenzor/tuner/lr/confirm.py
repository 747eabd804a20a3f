"""Confirming the range test's LR by training: which candidates to train, and for how long.

A range test reads a curve of ~100 steps; users train for thousands, with OneCycle. Where that answer must be
trusted, a few candidate LRs around it are trained at the user's own schedule, compressed to a short budget, and
the one with the lowest validation loss is kept. This module holds the two decisions of that procedure as pure
functions of numbers (no model, no Lightning, no Optuna: the app and the benchmark both drive them):

* **which candidates** (:func:`candidate_lrs`): points of the quarter-decade lattice ``10**(k/4)`` in the finder's
  band when its result carries one, else from ``s/10`` to ``3 s`` around the suggestion ``s`` (the window measured
  when this was designed), all below the curve's wall (:func:`curve_wall`, where the range test blew up);
* **how long** (:func:`rung_schedule`): synchronous successive halving (Jamieson & Talwalkar 2016; Li et al. 2018,
  Hyperband). Every candidate trains for ``s0`` steps, the best ``1/reduction`` of them again for
  ``reduction x s0`` steps, and so on while two or more remain; the last rung's best is the answer. Each rung trains
  *from the same start* with the schedule compressed to that rung's steps, so every comparison is between
  finished (annealed) runs: a mid-schedule comparison (OneCycle at its peak) is the short-horizon trap
  (Wu et al. 2018, "Understanding Short-Horizon Bias in Stochastic Meta-Optimization"). ``s0`` is the largest that
  keeps the whole schedule within the budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PER_DECADE = 4  # the lattice 10 ** (k / 4): the benchmarks' oracle grid, so candidates and grid points coincide
WINDOW = (0.1, 3.0)  # candidates from s / 10 to 3 s without a band (the window measured at design)
DEFAULT_CONFIRM_CANDIDATES = 6
DEFAULT_CONFIRM_BUDGET = 0.25  # share of the planned training steps the whole confirmation may spend
DEFAULT_REDUCTION = 3  # 6 candidates -> 2: two rungs, the second 3x as long as the first
MIN_TRIAL_STEPS = 4  # fewer steps than this per first-rung trial says nothing about an LR


@dataclass(frozen=True)
class Rung:
    """One rung of successive halving: ``trials`` candidates each trained for ``steps`` optimizer steps."""

    steps: int
    trials: int

    @property
    def cost(self) -> int:
        return self.steps * self.trials


@dataclass(frozen=True)
class ConfirmPlan:
    """The candidates and the rungs of one confirmation, and the training they are measured against."""

    candidates: tuple[float, ...]
    rungs: tuple[Rung, ...]
    planned_steps: int

    @property
    def cost(self) -> int:
        """Training steps of the whole schedule (an upper bound: a diverged trial stops early)."""
        return sum(rung.cost for rung in self.rungs)

    @property
    def trials(self) -> int:
        return sum(rung.trials for rung in self.rungs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": list(self.candidates),
            "rungs": [{"steps": r.steps, "trials": r.trials} for r in self.rungs],
            "planned_steps": self.planned_steps,
        }


# --- the candidates ------------------------------------------------------------------------------------------------


def lattice(low: float, high: float, per_decade: int = PER_DECADE) -> list[float]:
    """The points ``10**(k / per_decade)`` in ``[low, high]``, ascending (a hair of slack for rounding)."""
    if not (0 < low <= high and math.isfinite(high)):
        raise ValueError(f"lattice needs 0 < low <= high < inf, got {low!r}, {high!r}")
    first = math.ceil(per_decade * math.log10(low) - 1e-9)
    last = math.floor(per_decade * math.log10(high) + 1e-9)
    return [10 ** (k / per_decade) for k in range(first, last + 1)]


def curve_wall(lrs: Sequence[float], losses: Sequence[float], stopped_early: bool = False) -> float | None:
    """The LR where the range test's curve blew up: None when it never did.

    That is the first LR after the curve's lowest point at which the (smoothed) loss is back above where the curve
    started, or not finite; failing that, the last LR of a test that stopped early (diverged / non-finite loss).
    """
    points = [(lr, loss) for lr, loss in zip(lrs, losses, strict=True) if lr > 0 and math.isfinite(lr)]
    finite = [loss for _, loss in points if math.isfinite(loss)]
    if not finite:
        return points[0][0] if points else None
    start = next(loss for _, loss in points if math.isfinite(loss))
    bottom = min(range(len(points)), key=lambda i: points[i][1] if math.isfinite(points[i][1]) else math.inf)
    for lr, loss in points[bottom + 1 :]:
        if not math.isfinite(loss) or loss > start:
            return lr
    return points[-1][0] if stopped_early else None


def candidate_lrs(
    suggestion: float,
    count: int = DEFAULT_CONFIRM_CANDIDATES,
    *,
    band: tuple[float, float] | None = None,
    wall: float | None = None,
    window: tuple[float, float] = WINDOW,
    per_decade: int = PER_DECADE,
) -> tuple[float, ...]:
    """``count`` LRs of the lattice ``10**(k / per_decade)``, ascending, all below ``wall``.

    A wall at or below the suggestion is ignored: the suggestion rule read the curve past it, so it is the noise of
    a flat start rising above the first loss (measured: a hold-out curve whose wall read 1.2e-8 sent every candidate
    six decades below its suggestion), not where training blows up.

    The window is ``band`` when given (the finder's own interval), else ``window`` times the suggestion. Of the
    lattice points below the wall, the ``count`` nearest (in log LR) to the window's geometric centre are kept: a
    window that holds more points is trimmed at both ends, one that holds fewer is widened, and a wall that cuts
    the window shifts the candidates down.

    Raises:
        ValueError: a non-positive suggestion, band or wall, or ``count < 2``.
    """
    if count < 2:
        raise ValueError(f"count={count}: confirming needs at least 2 candidates to compare")
    if not (math.isfinite(suggestion) and suggestion > 0):
        raise ValueError(f"suggestion={suggestion!r}: needs a positive, finite LR")
    low, high = band if band is not None else (suggestion * window[0], suggestion * window[1])
    if not (0 < low <= high and math.isfinite(high)):
        raise ValueError(f"band ({low!r}, {high!r}): needs 0 < low <= high")
    if wall is not None and not wall > 0:
        raise ValueError(f"wall={wall!r}: needs a positive LR (or None)")
    if wall is not None and wall <= suggestion:
        wall = None  # noise on a flat start, not a blow-up: the finder read its curve past that point
    centre = (math.log10(low) + math.log10(high)) / 2
    top = math.floor(per_decade * math.log10(high) + 1e-9)
    if wall is not None:
        top = min(top, math.ceil(per_decade * math.log10(wall) - 1e-9) - 1)  # strictly below the wall
    ks = range(top - 4 * count, top + 1)
    nearest = sorted(ks, key=lambda k: (abs(k / per_decade - centre), k))[:count]
    return tuple(10 ** (k / per_decade) for k in sorted(nearest))


def finder_band(result: Any) -> tuple[float, float] | None:
    """The finder result's LR band ``(low, high)`` when it carries one (attribute ``band`` or ``metadata["band"]``)."""
    band = getattr(result, "band", None)
    if band is None:
        band = (getattr(result, "metadata", None) or {}).get("band")
    if band is None:
        return None
    if isinstance(band, Mapping):
        band = (band.get("low"), band.get("high"))
    try:
        low, high = (float(v) for v in band)
    except (TypeError, ValueError):
        return None
    return (low, high) if 0 < low <= high and math.isfinite(high) else None


def finder_wall(result: Any) -> float | None:
    """:func:`curve_wall` of a finder result (its smoothed curve and stop reason)."""
    stopped = str(getattr(result, "stop_reason", "") or "") in ("diverged", "non_finite_loss")
    return curve_wall(result.lrs, result.losses, stopped_early=stopped)


# --- the rungs -----------------------------------------------------------------------------------------------------


def rung_schedule(
    candidates: int,
    planned_steps: int,
    budget: float = DEFAULT_CONFIRM_BUDGET,
    reduction: int = DEFAULT_REDUCTION,
    min_steps: int = MIN_TRIAL_STEPS,
) -> tuple[Rung, ...]:
    """Successive halving of ``candidates`` within ``budget x planned_steps`` training steps.

    Rung ``r`` trains ``n_r`` candidates for ``s0 x reduction**r`` steps each, ``n_0 = candidates`` and
    ``n_{r+1} = n_r // reduction``, while ``n_r >= 2``; ``s0`` is the largest whole number of steps that keeps the
    sum of ``n_r x s_r`` within the budget.

    Raises:
        ValueError: fewer than 2 candidates, a budget outside (0, 1], ``reduction < 2``, or a budget too small for
            ``min_steps`` per first-rung trial (the message says how large it must be).
    """
    if candidates < 2:
        raise ValueError(f"candidates={candidates}: successive halving needs at least 2")
    if not 0 < budget <= 1:
        raise ValueError(f"budget={budget!r}: a share of the planned training in (0, 1]")
    if reduction < 2:
        raise ValueError(f"reduction={reduction!r}: must be at least 2")
    counts = [candidates]
    while counts[-1] // reduction >= 2:
        counts.append(counts[-1] // reduction)
    weight = sum(n * reduction**r for r, n in enumerate(counts))
    first = math.floor(budget * planned_steps / weight)
    if first < min_steps:
        needed = min_steps * weight / max(planned_steps, 1)
        raise ValueError(
            f"a budget of {budget:g} x {planned_steps} planned steps leaves {first} steps per first trial "
            f"(at least {min_steps}); raise the budget to {needed:.2g}, train longer, or use fewer candidates"
        )
    return tuple(Rung(first * reduction**r, n) for r, n in enumerate(counts))


def plan_confirmation(
    suggestion: float,
    planned_steps: int,
    *,
    budget: float = DEFAULT_CONFIRM_BUDGET,
    count: int = DEFAULT_CONFIRM_CANDIDATES,
    reduction: int = DEFAULT_REDUCTION,
    band: tuple[float, float] | None = None,
    wall: float | None = None,
) -> ConfirmPlan:
    """The candidates (:func:`candidate_lrs`) and rungs (:func:`rung_schedule`) of one confirmation."""
    candidates = candidate_lrs(suggestion, count, band=band, wall=wall)
    return ConfirmPlan(candidates, rung_schedule(len(candidates), planned_steps, budget, reduction), planned_steps)


def survivors(losses: Mapping[float, float], keep: int) -> list[float]:
    """The ``keep`` LRs of lowest loss, ascending by loss; non-finite losses last, ties to the smaller LR."""
    ranked = sorted(losses, key=lambda lr: (not math.isfinite(losses[lr]), losses[lr], lr))
    return ranked[:keep]
