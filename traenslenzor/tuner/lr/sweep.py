"""The LR range test as a framework-free recorder (Smith 2015/2017).

:class:`RangeTest` owns the sweep, the recorded curve and the stop rules; it never touches a model. The plain
PyTorch loop (:func:`traenslenzor.tuner.find_lr`) and the Lightning callback both drive it the same way::

    test = RangeTest(SweepSettings(min_lr=1e-7, max_lr=1.0, num_training=100))
    ratios = group_lr_ratios(optimizer)  # traenslenzor.tuner.lr.param_groups
    for step in range(test.num_training):
        set_group_lrs(optimizer, test.lr_at(step), ratios)
        loss = train_one_optimizer_step()
        if test.record(test.lr_at(step), loss):
            break
    result = test.result()
"""

from __future__ import annotations

import math
from typing import Any

from traenslenzor.tuner.lr.result import LRFinderResult
from traenslenzor.tuner.lr.schedule import lr_schedule
from traenslenzor.tuner.lr.settings import DEFAULT_SWEEP, StopReason, SweepSettings
from traenslenzor.tuner.lr.smoothing import EmaSmoother, has_diverged

__all__ = ["DEFAULT_SWEEP", "RangeTest", "StopReason", "SweepSettings"]


class RangeTest:
    """Sweep LRs, record raw and smoothed losses, and decide when to stop.

    Args:
        settings: the sweep (validated when it was built); the default sweep when None.
    """

    def __init__(self, settings: SweepSettings | None = None) -> None:
        if settings is None:
            settings = DEFAULT_SWEEP
        if not isinstance(settings, SweepSettings):
            raise TypeError(f"settings must be a SweepSettings, got {type(settings).__name__}.")
        self.settings = settings
        self.min_lr = settings.min_lr
        self.max_lr = settings.max_lr
        self.num_training = settings.num_training
        self.mode = settings.mode
        self.early_stop_threshold = settings.early_stop_threshold
        self.beta = settings.beta
        self._smoother = EmaSmoother(settings.beta)
        self._schedule = lr_schedule(settings.min_lr, settings.max_lr, settings.num_training, settings.mode)
        self.lrs: list[float] = []
        self.losses: list[float] = []  # smoothed
        self.raw_losses: list[float] = []
        self.best_loss = math.inf
        self.done = False
        self.stop_reason: StopReason | str | None = None

    def lr_at(self, step: int) -> float:
        """LR for optimizer step ``step`` (0-based)."""
        if not 0 <= step < self.num_training:
            raise IndexError(f"step={step} is outside the range test's {self.num_training} steps.")
        return self._schedule[step]

    def record(self, lr: float, loss: float) -> bool:
        """Store one point; return True when the test must stop now."""
        if self.done:
            raise RuntimeError(f"The range test has already stopped ({self.stop_reason}); start a new RangeTest.")
        loss = float(loss)
        self.lrs.append(float(lr))
        self.raw_losses.append(loss)
        if not math.isfinite(loss):
            self.losses.append(math.nan)
            return self.stop(StopReason.NON_FINITE_LOSS)
        smoothed = self._smoother.update(loss)
        self.losses.append(smoothed)
        if has_diverged(smoothed, self.best_loss, self.early_stop_threshold):
            return self.stop(StopReason.DIVERGED)
        self.best_loss = min(self.best_loss, smoothed)
        if len(self.lrs) >= self.num_training:
            return self.stop(StopReason.COMPLETED)
        return False

    def extend(self, lrs: list[float]) -> None:
        """Continue a completed test at ``lrs`` (e.g. past ``max_lr``, see ``lr_adaptive``): more steps, new max_lr.

        Raises:
            RuntimeError: the test has not completed (it diverged, broke or is still running).
        """
        if self.stop_reason != StopReason.COMPLETED:
            raise RuntimeError(f"Only a completed range test can be extended; this one is {self.stop_reason}.")
        if not lrs:
            return
        self._schedule = [*self._schedule, *(float(lr) for lr in lrs)]
        self.num_training = len(self._schedule)
        self.max_lr = self._schedule[-1]
        self.done = False
        self.stop_reason = None

    def stop(self, reason: StopReason | str) -> bool:
        """Mark the test as finished for ``reason`` (e.g. a trainer that stopped on its own); returns True."""
        if not self.done:
            self.done = True
            self.stop_reason = reason
        return True

    def result(self, **metadata: Any) -> LRFinderResult:
        """The recorded curve as an immutable :class:`LRFinderResult`; ``metadata`` is stored with it."""
        return LRFinderResult(
            lrs=tuple(self.lrs),
            losses=tuple(self.losses),
            raw_losses=tuple(self.raw_losses),
            min_lr=self.min_lr,
            max_lr=self.max_lr,
            num_training=self.num_training,
            mode=self.mode,
            early_stop_threshold=self.early_stop_threshold,
            beta=self.beta,
            stop_reason=self.stop_reason,
            metadata=dict(metadata),
        )
