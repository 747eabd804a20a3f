"""Smoothing of the range-test loss curve and the divergence test.

The loss of single mini-batches is noisy, so the range test follows an exponential moving average (EMA). A plain
EMA started at zero is biased towards zero for the first ``~1 / (1 - beta)`` points; dividing by
``1 - beta ** (t + 1)`` removes that bias (the correction Adam uses, Kingma & Ba 2015), so the smoothed curve is
right from the first point: the first smoothed value equals the first raw loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def check_beta(beta: float) -> None:
    """Raise ``ValueError`` unless ``beta`` is an EMA factor in [0, 1)."""
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0.0 <= beta < 1.0:
        raise ValueError(f"beta={beta!r}: the EMA factor must lie in [0, 1) (0.98 is usual; 0 means no smoothing).")


@dataclass
class EmaSmoother:
    """Incremental bias-corrected EMA: feed raw values one by one with :meth:`update`."""

    beta: float = 0.98
    average: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        check_beta(self.beta)

    def update(self, value: float) -> float:
        """Add ``value`` and return the bias-corrected smoothed value so far."""
        self.average = self.beta * self.average + (1.0 - self.beta) * value
        self.count += 1
        return self.average / (1.0 - self.beta**self.count)


def ema_smooth(values: list[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected EMA of ``values``.

    ``a_t = beta * a_{t-1} + (1 - beta) * x_t`` with ``a_{-1} = 0``, returned as ``s_t = a_t / (1 - beta ** (t + 1))``.
    """
    smoother = EmaSmoother(beta)
    return [smoother.update(v) for v in values]


def has_diverged(smoothed: float, best: float, threshold: float | None) -> bool:
    """Whether the smoothed loss has blown up: ``smoothed > threshold * best`` (``threshold=None`` never stops).

    For a best loss <= 0 (e.g. a negative log-likelihood) a ratio means nothing, so the same rise is measured
    as a distance: ``smoothed - best > (threshold - 1) * |best|``, which equals the ratio test for ``best > 0``.
    A non-finite smoothed loss counts as diverged.
    """
    if threshold is None:
        return False
    if not math.isfinite(smoothed):
        return True
    if best > 0:
        return smoothed > threshold * best
    return smoothed - best > (threshold - 1.0) * abs(best)
