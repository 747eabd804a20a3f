"""Automatic advice on an LR range-test curve: the users' guide's troubleshooting, applied by a program.

Each check is a pure function of an :class:`~traenslenzor.tuner.lr_result.LRFinderResult` that returns a
:class:`Finding` or None; :func:`diagnose` runs them all. An empty list means the curve looks like a textbook
range test (Smith 2015/2017): flat, then falling, then blowing up, with the suggestion inside the fall.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traenslenzor.tuner.lr_result import LRFinderResult

MIN_POINTS = 20  # fewer finite points than this make any suggestion a guess
EARLY_STOP_FRACTION = 0.25  # a blow-up within this share of num_training counts as "at once"
MIN_DECREASE = 0.05  # the smoothed loss must fall by this share of its first value to count as decreasing
MAX_FINAL_RISE = 0.1  # a completed curve that ends within this share of its drop above its best never diverged
MAX_NOISE = 0.25  # per-step noise (std) above this share of the drop makes the curve too noisy to read
EDGE_POINTS = 2  # a suggestion within this many points of the first/last point the rule may pick is at the edge
# median |x_t - x_{t-1}| of i.i.d. Gaussian noise is 0.6745 * sqrt(2) * sigma
_MEDIAN_ABS_DIFF_PER_SIGMA = 0.6745 * math.sqrt(2.0)


@dataclass(frozen=True)
class Finding:
    """One piece of advice: a stable ``code``, a ``severity`` (info, warning, error) and a message with the fix."""

    code: str
    severity: str
    message: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.message}"


def _finite(values: tuple[float, ...]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _drop(result: LRFinderResult) -> float:
    """How far the smoothed loss fell from its first value to its best (0 if it never fell)."""
    smoothed = _finite(result.losses)
    return max(0.0, smoothed[0] - min(smoothed)) if smoothed else 0.0


def check_too_few_points(result: LRFinderResult) -> Finding | None:
    count = len(_finite(result.raw_losses))
    if count >= MIN_POINTS:
        return None
    return Finding(
        "too_few_points",
        "warning",
        f"Only {count} usable points (stopped: {result.stop_reason}); a suggestion from so few is a guess. "
        f"Run at least {MIN_POINTS} (num_training=100 is usual) and check the findings on why it stopped early.",
    )


def check_diverged_early(result: LRFinderResult) -> Finding | None:
    if result.stop_reason not in ("diverged", "non_finite_loss"):
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
    smoothed = _finite(result.losses)
    if len(smoothed) < 2:
        return None
    scale = abs(smoothed[0]) or 1.0
    if _drop(result) >= MIN_DECREASE * scale:
        return None
    return Finding(
        "never_decreased",
        "warning",
        f"The smoothed loss never fell by {MIN_DECREASE:.0%} below its start ({smoothed[0]:.4g}). Check the data "
        "(labels matching inputs), the loss function and that the optimizer holds the model's parameters; if all "
        f"is right, the range is too low: raise max_lr (now {result.max_lr:.2e}).",
    )


def check_never_diverged(result: LRFinderResult) -> Finding | None:
    smoothed = _finite(result.losses)
    if result.stop_reason != "completed" or len(smoothed) < 2:
        return None
    best = min(smoothed)
    if smoothed[-1] - best > MAX_FINAL_RISE * max(_drop(result), 1e-12):
        return None
    return Finding(
        "never_diverged",
        "info",
        f"The loss never turned up before max_lr={result.max_lr:.2e}: the curve does not show where training "
        "breaks, so the best LR may lie beyond it. Raise max_lr (e.g. 10x) and run again.",
    )


def check_noisy(result: LRFinderResult) -> Finding | None:
    # Noise is read up to the lowest smoothed loss: after it, the blow-up's rise would count as noise.
    smoothed, raw = result.losses, result.raw_losses
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        return None
    bottom = min(finite, key=lambda i: smoothed[i])
    before = _finite(raw[: bottom + 1])
    drop = _drop(result)
    if len(before) < 5 or drop <= 0:
        return None
    sigma = median(abs(b - a) for a, b in itertools.pairwise(before)) / _MEDIAN_ABS_DIFF_PER_SIGMA
    if sigma <= MAX_NOISE * drop:
        return None
    return Finding(
        "noisy",
        "warning",
        f"The curve is noisy: per-step noise ~{sigma:.3g} against a total fall of {drop:.3g}. Use more steps "
        "(num_training), a larger batch, or stronger smoothing (beta closer to 1); treat the suggestion as rough.",
    )


def check_suggestion(result: LRFinderResult, method: str | None = None) -> Finding | None:
    """No suggestion at all, or one at the first/last points the rule may pick (the range cut the answer off)."""
    skip_begin, skip_end = 10, 1  # suggestion()'s defaults
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
    if len(_finite(result.losses)) >= 2:
        suggestion = check_suggestion(result, method)
        if suggestion is not None:
            findings.append(suggestion)
    return findings
