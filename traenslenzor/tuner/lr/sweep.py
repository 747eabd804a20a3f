"""The LR range test as a framework-free recorder (Smith 2015/2017).

:class:`RangeTest` owns the sweep, the recorded curve and the stop rules; it never touches a model. The plain
PyTorch loop (:func:`traenslenzor.tuner.find_lr`) and the Lightning callback both drive it the same way (through
:class:`~traenslenzor.tuner.lr.adaptive.AdaptiveSweep`, whose continuation may lengthen the sweep once it
completes, so the loop asks ``test.done`` rather than counting steps)::

    test = RangeTest(SweepSettings(min_lr=1e-7, max_lr=1.0, num_training=100))
    ratios = group_lr_ratios(optimizer)  # traenslenzor.tuner.lr.param_groups
    while not test.done:
        lr = test.lr_at(len(test.lrs))
        set_group_lrs(optimizer, lr, ratios)
        test.record(lr, train_one_optimizer_step())
    result = test.result()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from traenslenzor.tuner.lr.result import LRFinderResult
from traenslenzor.tuner.lr.schedule import lr_schedule
from traenslenzor.tuner.lr.settings import DEFAULT_SWEEP, StopReason, SweepSettings
from traenslenzor.tuner.lr.smoothing import EmaSmoother, batch_noise, has_diverged, within_noise

__all__ = ["DEFAULT_SWEEP", "RangeTest", "StopReason", "SweepSettings"]


class RangeTest:
    """Sweep LRs, record raw and smoothed losses, and decide when to stop.

    Args:
        settings: the sweep (validated when it was built); the default sweep when None. Read, never changed.
        continuation: asked once, when the sweep completes, for LRs to continue at (e.g. past ``max_lr``, see
            :class:`~traenslenzor.tuner.lr.adaptive.AdaptiveSweep`); an empty answer ends the test. The LRs it
            gives are kept in :attr:`extension`, and ``max_lr``/``num_training`` then describe the sweep that ran.
    """

    def __init__(
        self,
        settings: SweepSettings | None = None,
        *,
        continuation: Callable[[RangeTest], Sequence[float]] | None = None,
    ) -> None:
        if settings is None:
            settings = DEFAULT_SWEEP
        if not isinstance(settings, SweepSettings):
            raise TypeError(f"settings must be a SweepSettings, got {type(settings).__name__}.")
        self.settings = settings
        self.extension: tuple[float, ...] = ()  # LRs run past the settings' sweep (from the continuation)
        self._continuation = continuation
        self._smoother = EmaSmoother(settings.beta)
        self._schedule = lr_schedule(settings.min_lr, settings.max_lr, settings.num_training, settings.mode)
        self.lrs: list[float] = []
        self.losses: list[float] = []  # smoothed
        self.raw_losses: list[float] = []
        self.probe_losses: list[float] = []  # loss on the fixed probe batches after each step (issue 20); may be empty
        self.best_loss = math.inf
        self._best_count = 0  # points recorded when best_loss was set
        self.done = False
        self.stop_reason: StopReason | str | None = None

    @property
    def num_training(self) -> int:
        """Steps of the sweep: the settings' plus the extension's."""
        return len(self._schedule)

    @property
    def max_lr(self) -> float:
        """Last LR of the sweep: the settings' ``max_lr``, or the end of the extension."""
        return self.extension[-1] if self.extension else self.settings.max_lr

    def lr_at(self, step: int) -> float:
        """LR for optimizer step ``step`` (0-based)."""
        if not 0 <= step < self.num_training:
            raise IndexError(f"step={step} is outside the range test's {self.num_training} steps.")
        return self._schedule[step]

    def record(self, lr: float, loss: float, probe: float | None = None) -> bool:
        """Store one point; return True when the test must stop now.

        ``probe`` is the loss on the fixed probe batches measured after this step (forward only); give it at every
        step or never (a missing one is stored as NaN once the curve has any).
        """
        if self.done:
            raise RuntimeError(f"The range test has already stopped ({self.stop_reason}); start a new RangeTest.")
        loss = float(loss)
        if probe is not None or self.probe_losses:
            missing = len(self.lrs) - len(self.probe_losses)
            self.probe_losses.extend([math.nan] * missing + [math.nan if probe is None else float(probe)])
        self.lrs.append(float(lr))
        self.raw_losses.append(loss)
        if not math.isfinite(loss):
            self.losses.append(math.nan)
            return self.stop(StopReason.NON_FINITE_LOSS)
        smoothed = self._smoother.update(loss)
        self.losses.append(smoothed)
        if self._blew_up(smoothed):
            return self.stop(StopReason.DIVERGED)
        if smoothed < self.best_loss:
            self.best_loss, self._best_count = smoothed, len(self.lrs)
        if len(self.lrs) >= self.num_training:
            self.stop(StopReason.COMPLETED)
            return not self._continue()
        return False

    def _blew_up(self, smoothed: float) -> bool:
        """``early_stop_threshold`` x the best, and (for a finite loss) a rise beyond the batches' noise."""
        if not has_diverged(smoothed, self.best_loss, self.settings.early_stop_threshold):
            return False
        if not math.isfinite(smoothed):
            return True
        noise = batch_noise(self.raw_losses)
        return not within_noise(smoothed - self.best_loss, noise, len(self.lrs), self._best_count, self.settings.beta)

    def _continue(self) -> bool:
        """Ask the continuation (once) for more LRs after a completed sweep; whether the test goes on."""
        if self._continuation is None or self.extension:
            return False
        more = tuple(float(lr) for lr in self._continuation(self))
        if not more:
            return False
        self.extension = more
        self._schedule = [*self._schedule, *more]
        self.done = False
        self.stop_reason = None
        return True

    def stop(self, reason: StopReason | str) -> bool:
        """Mark the test as finished for ``reason`` (e.g. a trainer that stopped on its own); returns True."""
        if not self.done:
            self.done = True
            self.stop_reason = reason
        return True

    def result(self, **metadata: Any) -> LRFinderResult:
        """The recorded curve as an immutable :class:`LRFinderResult`; ``metadata`` is stored with it.

        ``min_lr``/``max_lr``/``num_training`` are those of the sweep that ran (with its extension).
        """
        settings = self.settings
        return LRFinderResult(
            lrs=tuple(self.lrs),
            losses=tuple(self.losses),
            raw_losses=tuple(self.raw_losses),
            probe_losses=tuple(self.probe_losses),
            min_lr=settings.min_lr,
            max_lr=self.max_lr,
            num_training=self.num_training,
            mode=settings.mode,
            early_stop_threshold=settings.early_stop_threshold,
            beta=settings.beta,
            stop_reason=self.stop_reason,
            metadata=dict(metadata),
        )
