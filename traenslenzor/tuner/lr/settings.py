"""The LR sweep's settings and stop reasons: written once, validated once, passed down unchanged.

:class:`SweepSettings` is built at the boundary (``find_lr``, the Lightning ``LearningRateFinder``, the app's
``TunerConfig``) and handed as is to :class:`~traenslenzor.tuner.lr.sweep.RangeTest`; nothing below the boundary
checks it again. Its field defaults are the only place the sweep defaults are written; the public signatures read
them from :data:`DEFAULT_SWEEP`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from traenslenzor.tuner.lr.schedule import validate_range
from traenslenzor.tuner.lr.smoothing import check_beta


class StopReason(StrEnum):
    """Why a range test stopped; a ``str`` (``StopReason.COMPLETED == "completed"``): JSON and logs show the value."""

    COMPLETED = "completed"  # all num_training points recorded
    DIVERGED = "diverged"  # smoothed loss > early_stop_threshold * best
    NON_FINITE_LOSS = "non_finite_loss"  # a NaN/inf loss: training broke, nothing after it means anything


def validate_threshold(early_stop_threshold: float | None) -> None:
    """Raise ``ValueError`` unless the threshold is None or a finite number above 1."""
    if early_stop_threshold is None:
        return
    if (
        not isinstance(early_stop_threshold, int | float)
        or isinstance(early_stop_threshold, bool)
        or not math.isfinite(early_stop_threshold)
        or early_stop_threshold <= 1.0
    ):
        raise ValueError(
            f"early_stop_threshold={early_stop_threshold!r}: must be a number above 1 (the multiple of the best "
            "loss at which the test stops; 4.0 is usual), or None to run all num_training steps."
        )


@dataclass(frozen=True)
class SweepSettings:
    """One LR range test's sweep, validated when built (``ValueError`` naming the field and the fix).

    Attributes:
        min_lr: first LR of the sweep.
        max_lr: last LR of the sweep.
        num_training: optimizer steps (curve points) at most.
        mode: ``"exponential"`` (uniform in log LR) or ``"linear"``.
        early_stop_threshold: stop once the smoothed loss exceeds this multiple of the best smoothed loss so far;
            None disables it. A NaN/inf loss always stops the test at once.
        beta: EMA factor of the smoothed curve (``results["loss"]`` and the early stop).
    """

    min_lr: float = 1e-8
    max_lr: float = 1.0
    num_training: int = 100
    mode: str = "exponential"
    early_stop_threshold: float | None = 4.0
    beta: float = 0.98

    def __post_init__(self) -> None:
        validate_range(self.min_lr, self.max_lr, self.num_training, self.mode)
        validate_threshold(self.early_stop_threshold)
        check_beta(self.beta)
        object.__setattr__(self, "min_lr", float(self.min_lr))
        object.__setattr__(self, "max_lr", float(self.max_lr))
        object.__setattr__(self, "beta", float(self.beta))


DEFAULT_SWEEP = SweepSettings()
