"""Smoothing of the range-test loss curve and the divergence test.

The loss of single mini-batches is noisy, so the range test follows an exponential moving average (EMA). A plain
EMA started at zero is biased towards zero for the first ``~1 / (1 - beta)`` points; dividing by
``1 - beta ** (t + 1)`` removes that bias (the correction Adam uses, Kingma & Ba 2015), so the smoothed curve is
right from the first point: the first smoothed value equals the first raw loss.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# A rise of the smoothed loss is a blow-up only when it also clears this many noise sigmas of the difference between
# the two smoothed values compared (the current one and the best).
DIVERGENCE_NOISE_SIGMAS = 3.0


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


def effective_points(count: int, beta: float) -> float:
    """How many raw values the bias-corrected EMA after ``count`` of them averages, as an equal-weight mean would
    (``(sum w)^2 / sum w^2``; 1 for the first value or ``beta = 0``, up to ``(1 + beta) / (1 - beta)``)."""
    if count <= 1 or beta == 0.0:
        return 1.0
    return (1 - beta**count) ** 2 * (1 + beta) / ((1 - beta) * (1 - beta ** (2 * count)))


def batch_noise(raw: Sequence[float]) -> float:
    """The raw losses' batch-to-batch noise (one sigma) before the newest value: the mean absolute step between
    neighbours scaled to a normal sigma (``sqrt(pi) / 2``). The mean, not the median: a loss near 0 is mostly small
    steps and now and then a batch with a mistake, and those outliers are the noise the smoothed loss carries. The
    newest step is left out (a blow-up must not widen its own noise), unless it is the only one; 0 before two values.
    """
    steps = [abs(b - a) for a, b in itertools.pairwise(raw[:-1])] or [abs(b - a) for a, b in itertools.pairwise(raw)]
    return math.sqrt(math.pi) / 2 * statistics.fmean(steps) if steps else 0.0


def within_noise(rise: float, noise: float, count: int, best_count: int, beta: float) -> bool:
    """Whether ``rise`` (the smoothed loss now minus its best) is within ``DIVERGENCE_NOISE_SIGMAS`` of the noise of
    that difference: each smoothed value averages ``effective_points`` batches of ``noise`` each (its count now,
    and the count when the best was set).

    Near a loss of 0 (a fine-tuned model that already fits its batches) one batch can be many times the mean, and
    a best set by the first lucky batch made "4 x the best" a blow-up at LRs where nothing moves.
    """
    spread = noise * math.sqrt(1 / effective_points(count, beta) + 1 / effective_points(best_count, beta))
    return rise <= DIVERGENCE_NOISE_SIGMAS * spread
