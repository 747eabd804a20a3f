"""Confirming the range test's LR by training: which candidates to train, for how long, and what they say.

A range test reads a curve of ~100 steps; users train for thousands, with OneCycle. Where that answer must be
trusted, a few candidate LRs around it are trained at the user's own schedule, compressed to a short budget, and
the one with the lowest validation loss is kept. This module holds the two decisions of that procedure as pure
functions of numbers (no model, no Lightning, no Optuna: the app and the benchmark both drive them):

* **which candidates** (:func:`candidate_lrs`): points of the quarter-decade lattice ``10**(k/4)`` in the finder's
  band when its result carries one, else from ``s/10`` to ``3 s`` around the suggestion ``s`` (the window measured
  when this was designed), all below the curve's wall (:func:`curve_wall`, where the range test blew up);
* **how long** (:func:`rung_schedule`): synchronous successive halving (Jamieson & Talwalkar 2016; Li et al. 2018,
  Hyperband). Every candidate trains for ``s0`` steps, the best ``1/reduction`` of them again for
  ``reduction x s0`` steps, and so on while two or more remain. ``s0`` is the largest that keeps the whole
  schedule within the budget; a budget whose first-rung trials would be shorter than ``MIN_TRIAL_STEPS`` is refused
  (:class:`TrialsTooShort` names the budget that would do).
* **restart or continue**: under a OneCycle schedule each rung trains *from the same start* with the schedule
  compressed to that rung's steps, so every comparison is between finished (annealed) runs -- a compressed cycle
  cannot be continued (it ended at ~0 LR), and a mid-schedule comparison (OneCycle at its peak) is the
  short-horizon trap (Wu et al. 2018, "Understanding Short-Horizon Bias in Stochastic Meta-Optimization"). Under a
  constant LR a survivor *continues* its own run: the
  next rung trains only the extra steps, and the result is the run of the longer length (same LR all along).
* **what they say** (:func:`decide`): the finder's LR is one of the candidates and always reaches the last rung;
  another candidate replaces it only when it beats the finder's LR's trial by more than ``margin`` of that trial's
  validation loss, and only when some trial moved the validation loss below its start by that margin. Otherwise
  the verdict is "not decided", and the finder's LR is kept.
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
DEFAULT_CONFIRM_MARGIN = 0.01  # relative: a candidate must beat the finder's LR's trial by more than this share
MIN_TRIAL_STEPS = 10  # first-rung trials shorter than this did not move AlexNet's loss (4 steps; 12 did, barely)


@dataclass(frozen=True)
class Rung:
    """One rung of successive halving: ``trials`` candidates, each a run of ``steps`` optimizer steps.

    ``continued``: each survivor goes on from its run of the rung before (``previous`` steps), training only
    ``steps - previous`` more; otherwise every trial of the rung trains ``steps`` from the start.
    """

    steps: int
    trials: int
    continued: bool = False
    previous: int = 0

    @property
    def trained(self) -> int:
        """Steps each trial of this rung trains (all of them, or the extra ones of a continued run)."""
        return self.steps - self.previous if self.continued else self.steps

    @property
    def cost(self) -> int:
        return self.trained * self.trials


@dataclass(frozen=True)
class ConfirmPlan:
    """The candidates and the rungs of one confirmation, and the training they are measured against."""

    candidates: tuple[float, ...]
    rungs: tuple[Rung, ...]
    planned_steps: int
    incumbent: float | None = None  # the finder's LR, one of the candidates: it always reaches the last rung

    @property
    def continued(self) -> bool:
        """Whether survivors continue their runs (a constant-LR schedule) instead of restarting them."""
        return any(rung.continued for rung in self.rungs)

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
            "incumbent": self.incumbent,
            "rungs": [{"steps": r.steps, "trials": r.trials, "continued": r.continued} for r in self.rungs],
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


def with_incumbent(candidates: Sequence[float], suggestion: float) -> tuple[float, ...]:
    """``candidates`` with the one nearest ``suggestion`` (in log LR) replaced by the suggestion itself, ascending.

    The finder's own LR is then trained like every other candidate, so the verdict compares the candidates with it
    at the same length, and "keep the finder's LR" is an answer the trials measured.
    """
    if any(math.isclose(lr, suggestion, rel_tol=1e-9) for lr in candidates):
        return tuple(sorted(candidates))
    nearest = min(candidates, key=lambda lr: abs(math.log10(lr / suggestion)))
    return tuple(sorted([lr for lr in candidates if lr != nearest] + [suggestion]))


# --- the rungs -----------------------------------------------------------------------------------------------------


class TrialsTooShort(ValueError):
    """The budget gives first-rung trials fewer steps than a trial needs; ``budget_needed`` would do (or None)."""

    def __init__(self, message: str, budget_needed: float | None, min_steps: int) -> None:
        super().__init__(message)
        self.budget_needed = budget_needed
        self.min_steps = min_steps


def _rung_counts(candidates: int, reduction: int) -> list[int]:
    counts = [candidates]
    while counts[-1] // reduction >= 2:
        counts.append(counts[-1] // reduction)
    return counts


def rung_schedule(
    candidates: int,
    planned_steps: int,
    budget: float = DEFAULT_CONFIRM_BUDGET,
    reduction: int = DEFAULT_REDUCTION,
    min_steps: int = MIN_TRIAL_STEPS,
    *,
    continued: bool = False,
) -> tuple[Rung, ...]:
    """Successive halving of ``candidates`` within ``budget x planned_steps`` training steps.

    Rung ``r`` holds ``n_r`` candidates, runs of ``s0 x reduction**r`` steps each, ``n_0 = candidates`` and
    ``n_{r+1} = n_r // reduction``, while ``n_r >= 2``; ``s0`` is the largest whole number of steps that keeps the
    steps trained by all rungs within the budget. ``continued``: survivors continue their runs, so rung ``r > 0``
    trains ``s_r - s_{r-1}`` steps per trial (a constant-LR schedule); otherwise each rung restarts its runs.

    Raises:
        TrialsTooShort: first-rung trials of fewer than ``min_steps`` steps (its message names the budget that
            would give ``min_steps``-step trials, when one within 1 does).
        ValueError: fewer than 2 candidates, a budget outside (0, 1], ``reduction < 2``.
    """
    if candidates < 2:
        raise ValueError(f"candidates={candidates}: successive halving needs at least 2")
    if not 0 < budget <= 1:
        raise ValueError(f"budget={budget!r}: a share of the planned training in (0, 1]")
    if reduction < 2:
        raise ValueError(f"reduction={reduction!r}: must be at least 2")
    counts = _rung_counts(candidates, reduction)
    growth = [reduction**r - (reduction ** (r - 1) if continued and r else 0) for r in range(len(counts))]
    weight = sum(n * g for n, g in zip(counts, growth, strict=True))
    first = math.floor(budget * planned_steps / weight)
    if first < min_steps:
        needed = math.ceil(100 * min_steps * weight / max(planned_steps, 1)) / 100
        fix = (
            f"confirm_budget = {needed:g} would give {min_steps}-step trials"
            if needed <= 1
            else f"no budget up to 1 gives {min_steps}-step trials"
        )
        raise TrialsTooShort(
            f"a budget of {budget:g} x {planned_steps} planned steps gives {first}-step first-rung trials, fewer than "
            f"the {min_steps} a trial needs to move the loss; {fix} (or train longer, or use fewer candidates)",
            needed if needed <= 1 else None,
            min_steps,
        )
    steps = [first * reduction**r for r in range(len(counts))]
    return tuple(
        Rung(s, n, continued and r > 0, steps[r - 1] if continued and r else 0)
        for r, (s, n) in enumerate(zip(steps, counts, strict=True))
    )


def plan_confirmation(
    suggestion: float,
    planned_steps: int,
    *,
    budget: float = DEFAULT_CONFIRM_BUDGET,
    count: int = DEFAULT_CONFIRM_CANDIDATES,
    reduction: int = DEFAULT_REDUCTION,
    band: tuple[float, float] | None = None,
    wall: float | None = None,
    continued: bool = False,
    min_steps: int = MIN_TRIAL_STEPS,
) -> ConfirmPlan:
    """The candidates (:func:`candidate_lrs` with the suggestion among them) and rungs (:func:`rung_schedule`).

    ``continued``: the schedule is a constant LR, so survivors continue their runs (see the module doc).
    """
    candidates = with_incumbent(candidate_lrs(suggestion, count, band=band, wall=wall), suggestion)
    rungs = rung_schedule(len(candidates), planned_steps, budget, reduction, min_steps, continued=continued)
    return ConfirmPlan(candidates, rungs, planned_steps, incumbent=suggestion)


def survivors(losses: Mapping[float, float], keep: int, incumbent: float | None = None) -> list[float]:
    """The ``keep`` LRs of lowest loss, ascending by loss; non-finite losses last, ties to the smaller LR.

    ``incumbent`` (the finder's LR), when among ``losses``, always survives: it takes the last place when it did
    not earn one, so the last rung compares the best candidates with it.
    """
    ranked = sorted(losses, key=lambda lr: (not math.isfinite(losses[lr]), losses[lr], lr))
    kept = ranked[:keep]
    if incumbent is not None and incumbent in losses and incumbent not in kept:
        kept = [*kept[: keep - 1], incumbent]
    return kept


# --- the verdict ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the last rung says: the LR to train with, whether the trials decided, and why, in one sentence."""

    learning_rate: float
    decided: bool
    reason: str
    improvement: float | None = None  # the best candidate's loss below the finder's LR's, as a share of the latter

    def to_dict(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "decided": self.decided, "reason": self.reason,
                "improvement": self.improvement}  # fmt: skip


def decide(
    losses: Mapping[float, float],
    incumbent: float,
    *,
    margin: float = DEFAULT_CONFIRM_MARGIN,
    start_loss: float | None = None,
) -> Verdict:
    """The verdict of the last rung's validation ``losses`` (``{lr: loss}``, the finder's LR ``incumbent`` among them).

    * every trial diverged, or none moved the loss more than ``margin`` below ``start_loss`` (the untrained model's
      validation loss; None: not checked): not decided, the finder's LR is kept;
    * the finder's LR trained best (ties included): decided, kept;
    * the finder's LR diverged and another did not: decided, the best of the others;
    * the best other beat the finder's LR by more than ``margin x`` its loss: decided, the best other;
      by less: not decided, the finder's LR is kept.
    """
    if incumbent not in losses:
        raise ValueError(f"incumbent {incumbent!r} is not among the trained LRs {sorted(losses)}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin={margin!r}: a share of the loss in [0, 1)")
    best = min(losses, key=lambda lr: (losses[lr], lr != incumbent, lr))
    own, top = losses[incumbent], losses[best]
    keep = f"keeping the finder's LR {incumbent:.2e}"
    if not math.isfinite(top):
        return Verdict(incumbent, False, f"not decided: every trial diverged; {keep}")
    if start_loss is not None and math.isfinite(start_loss) and top > start_loss - margin * abs(start_loss):
        return Verdict(
            incumbent, False,
            f"not decided: no trial lowered the validation loss more than {margin:.1%} below its start "
            f"({start_loss:.4g} -> best {top:.4g}): the trials are too short to tell the LRs apart; {keep}",
        )  # fmt: skip
    if best == incumbent:
        return Verdict(incumbent, True, f"the finder's LR {incumbent:.2e} trained best", 0.0)
    if not math.isfinite(own):
        return Verdict(best, True, f"the finder's LR {incumbent:.2e} diverged; {best:.2e} trained best")
    gain = (own - top) / abs(own) if own else math.inf
    if gain > margin:
        return Verdict(best, True, f"{best:.2e} beat the finder's LR {incumbent:.2e} by {gain:.1%} of its loss", gain)
    return Verdict(
        incumbent, False,
        f"not decided: the best candidate {best:.2e} beat the finder's LR by only {gain:.2%} of its loss "
        f"(margin {margin:.1%}); {keep}",
        gain,
    )  # fmt: skip
