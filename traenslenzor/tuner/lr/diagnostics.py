"""Automatic advice on an LR range-test curve: the usual troubleshooting of its shape, applied by a program.

Each check is a pure function of an :class:`~traenslenzor.tuner.lr.result.LRFinderResult` that returns a
:class:`Finding` or None; :func:`diagnose` runs them all. An empty list means the curve looks like a textbook
range test (Smith 2015/2017): flat, then falling, then blowing up, with the suggestion inside the fall.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from traenslenzor.tuner.lr.curve import final_valley, finite, never_turned_up, smoothed_noise
from traenslenzor.tuner.lr.settings import StopReason
from traenslenzor.tuner.lr.suggestion import SKIP_BEGIN, SKIP_END
from traenslenzor.tuner.lr.wall import MIN_FALL, WALL_DECADES_BELOW

if TYPE_CHECKING:
    from traenslenzor.tuner.lr.result import LRFinderResult

MIN_POINTS = 20  # fewer finite points than this make any suggestion a guess
EARLY_STOP_FRACTION = 0.25  # a blow-up within this share of num_training counts as "at once"
# Calibrated on the 45 real curves of benchmarks/lr_quality.py (docs/suggestion.md): the smoothed loss fell by
# 1.5-54% into its final valley on every curve the default rule read well, by 0.3-0.4% on two flat `cnn_sgdm`
# curves where any suggestion is a guess.
MIN_DECREASE = 0.01  # the final valley must lie this share below the highest loss before it to count as a fall
# That fall measured in noise standard deviations of the smoothed curve: 3.3-47 on the well-read curves, 0.9 on
# the flat ones. Below this the valley may be a wander of the noise.
MIN_SIGNAL_TO_NOISE = 3.0
EDGE_POINTS = 2  # a suggestion within this many points of the first/last point the rule may pick is at the edge


@dataclass(frozen=True)
class Finding:
    """One piece of advice: a stable ``code``, a ``severity`` (info, warning, error) and a message with the fix."""

    code: str
    severity: str
    message: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.message}"


@dataclass(frozen=True)
class _Fall:
    top: float  # highest smoothed loss before the floor
    floor: float  # lowest smoothed loss of the final valley
    noise: float  # noise std of the smoothed curve up to the floor (0 when too few points to tell)


def _fall(result: LRFinderResult) -> _Fall | None:
    """The fall into the curve's final valley, read as the default suggestion rule reads it; None if no valley.

    The first ``SKIP_BEGIN`` points are left out when enough remain (their EMA averages few batches); the valley is
    ``curve.final_valley`` (early dips of the plateau do not count); the noise is measured up to the floor
    so that the blow-up does not count as noise.
    """
    smoothed = np.array(finite(result.losses))
    if smoothed.size > SKIP_BEGIN + 3:
        smoothed = smoothed[SKIP_BEGIN:]
    valley = final_valley(smoothed)
    if valley is None:
        return None
    bottom = valley[1]
    noise = smoothed_noise(smoothed[: bottom + 1], result.beta) if bottom >= 4 else 0.0
    return _Fall(float(smoothed[: bottom + 1].max()), float(smoothed[bottom]), noise)


def check_too_few_points(result: LRFinderResult) -> Finding | None:
    count = len(finite(result.raw_losses))
    if count >= MIN_POINTS:
        return None
    return Finding(
        "too_few_points",
        "warning",
        f"Only {count} usable points (stopped: {result.stop_reason}); a suggestion from so few is a guess. "
        f"Run at least {MIN_POINTS} (num_training=100 is usual) and check the findings on why it stopped early.",
    )


def check_diverged_early(result: LRFinderResult) -> Finding | None:
    if result.stop_reason not in (StopReason.DIVERGED, StopReason.NON_FINITE_LOSS):
        return None
    if len(result.lrs) > EARLY_STOP_FRACTION * result.num_training:
        return None
    return Finding(
        "diverged_early",
        "warning",
        f"The loss blew up after {len(result.lrs)} of {result.num_training} steps, at lr={result.lrs[-1]:.2e}: "
        f"min_lr={result.min_lr:.2e} is already too high for this model. Lower min_lr (e.g. to "
        f"{result.min_lr / 100:.0e}) or max_lr, and check the model for instability (NaN/inf).",
    )


def check_never_decreased(result: LRFinderResult) -> Finding | None:
    smoothed = finite(result.losses)
    if len(smoothed) < 2:
        return None
    fall = _fall(result)
    if fall is not None and fall.top - fall.floor >= MIN_DECREASE * (abs(fall.top) or 1.0):
        return None
    return Finding(
        "never_decreased",
        "warning",
        f"The smoothed loss never fell by {MIN_DECREASE:.0%} below its earlier level (start {smoothed[0]:.4g}). Check "
        "the data (labels matching inputs), the loss function and that the optimizer holds the model's parameters; "
        f"if all is right, the model needs more steps to start learning (num_training) or the range is too low: "
        f"raise max_lr (now {result.max_lr:.2e}). A suggestion read from a flat curve is a guess (on the benchmark's "
        "flat curves, from the grid's best LR to useless).",
    )


def check_never_diverged(result: LRFinderResult) -> Finding | None:
    if result.stop_reason != StopReason.COMPLETED or not never_turned_up(result.losses, result.raw_losses):
        return None
    return Finding(
        "never_diverged",
        "info",
        f"The loss never turned up before max_lr={result.max_lr:.2e}: the curve does not show where training "
        "breaks, so the best LR may lie beyond it. Raise max_lr (e.g. 10x) and run again.",
    )


def check_noisy(result: LRFinderResult) -> Finding | None:
    fall = _fall(result)
    if fall is None or fall.noise <= 0 or fall.top <= fall.floor:
        return None
    signal = (fall.top - fall.floor) / fall.noise
    if signal >= MIN_SIGNAL_TO_NOISE:
        return None
    return Finding(
        "noisy",
        "warning",
        f"The curve is noisy: its fall ({fall.top - fall.floor:.3g}) is only {signal:.1f}x the noise of the smoothed "
        "loss, so the valley may be a wander of the noise. Use more steps (num_training), a larger batch, or "
        "stronger smoothing (beta closer to 1); treat the suggestion as rough.",
    )


def check_suggestion(result: LRFinderResult, method: str | None = None) -> Finding | None:
    """No suggestion at all, or one at the first/last points the rule may pick (the range cut the answer off)."""
    skip_begin, skip_end = SKIP_BEGIN, SKIP_END  # suggestion()'s defaults
    outcome = result.suggestion_outcome(skip_begin=skip_begin, skip_end=skip_end, method=method)
    if outcome.index is None:
        return Finding("no_suggestion", "warning", f"No LR suggestion ({outcome.method}): {outcome.reason}")
    lr = f"{outcome.lr:.2e}"
    if outcome.index <= skip_begin + EDGE_POINTS:
        return Finding(
            "suggestion_at_low_edge",
            "warning",
            f"The suggestion ({lr}) sits at the low end of the range: the loss was already falling at the start. "
            f"Lower min_lr (now {result.min_lr:.2e}) so the curve shows its flat start.",
        )
    if outcome.index >= len(result.lrs) - 1 - skip_end - EDGE_POINTS:
        return Finding(
            "suggestion_at_high_edge",
            "warning",
            f"The suggestion ({lr}) sits at the high end of the recorded range, right where the curve ends "
            f"({result.stop_reason}). Raise max_lr if the loss was still falling, otherwise use a lower LR.",
        )
    return None


def check_reading(result: LRFinderResult, method: str | None = None) -> Finding | None:
    """Which estimate decided the default (wall) reading, when it was not the usual two: a flat curve, no wall."""
    if method not in (None, "wall", "blend") or result.curve_for(method)[0] not in ("wall", "blend"):
        return None
    reading = result.reading()
    if reading is None:
        return None
    if not reading.rose:
        return Finding(
            "wall_not_reached",
            "warning",
            f"The fixed-batch loss never climbed back after its lowest point (at {reading.floor_lr:.2e}): the wall is "
            f"the last point, {reading.wall_lr:.2e}, a lower bound, so the suggestion may be too low. Raise max_lr "
            "until the loss blows up.",
        )
    looked_again = any(e.get("action") == "second_look" for e in result.metadata.get("adaptive_range") or [])
    if looked_again:
        return Finding(
            "second_look",
            "info",
            f"The first sweep's fixed-batch loss barely fell (a flat start), so the range test swept again, slower, "
            f"over {result.lrs[0]:.2e} .. {result.lrs[-1]:.2e}, below where it blew up; this curve is that second "
            "look. One curve places a flat start's LR roughly: confirm it by training (--confirm-learning-rate).",
        )
    if reading.descent_lr is None:
        return Finding(
            "wall_only",
            "info",
            f"The fixed-batch loss fell by less than {MIN_FALL:.0%} before it blew up: there is no descent to read, "
            f"so the wall alone decided (the suggestion is {WALL_DECADES_BELOW} decades below where the loss blew "
            f"up, {reading.wall_lr:.2e}). Check it with a short run or a slower sweep (more num_training).",
        )
    return None


Check = Callable[["LRFinderResult"], "Finding | None"]
CHECKS: tuple[Check, ...] = (
    check_too_few_points,
    check_diverged_early,
    check_never_decreased,
    check_never_diverged,
    check_noisy,
)


def diagnose(result: LRFinderResult, method: str | None = None) -> list[Finding]:
    """All findings on ``result`` (empty when the curve looks healthy); ``method`` is the suggestion rule to judge."""
    if not result.raw_losses:
        return [Finding("no_points", "error", "The range test recorded no points; nothing to read.")]
    if not math.isfinite(result.raw_losses[0]):
        return [
            Finding(
                "nan_at_start",
                "error",
                f"The loss was {result.raw_losses[0]} at the very first step (lr={result.lrs[0]:.2e}): the problem is "
                "not the learning rate. Check inputs and labels for NaN/inf, the loss function, the model's "
                "initialisation, and try amp=False.",
            )
        ]
    findings = [finding for check in CHECKS if (finding := check(result)) is not None]
    reading = check_reading(result, method)
    if reading is not None:
        findings.append(reading)
    if len(finite(result.losses)) >= 2:
        suggestion = check_suggestion(result, method)
        if suggestion is not None:
            findings.append(suggestion)
    return findings
