"""The LR range test as a framework-free recorder (Smith 2015/2017).

:class:`RangeTest` owns the sweep, the recorded curve and the stop rules; it never touches a model. The plain
PyTorch loop (:func:`traenslenzor.tuner.find_lr`) and the Lightning callback both drive it the same way::

    test = RangeTest(min_lr=1e-7, max_lr=1.0, num_training=100)
    ratios = group_lr_ratios(optimizer)
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

import torch

from traenslenzor.tuner.lr_result import LRFinderResult
from traenslenzor.tuner.schedule import lr_schedule, validate_range
from traenslenzor.tuner.smoothing import EmaSmoother, has_diverged

# Why the test stopped.
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


class RangeTest:
    """Sweep LRs, record raw and smoothed losses, and decide when to stop.

    Args:
        min_lr: first LR of the sweep.
        max_lr: last LR of the sweep.
        num_training: number of optimizer steps (points) at most.
        mode: ``"exponential"`` (uniform in log LR) or ``"linear"``.
        early_stop_threshold: stop once the smoothed loss exceeds this multiple of the best smoothed loss so far;
            None disables it. A NaN/inf loss always stops the test at once.
        beta: EMA factor of the smoothed curve.
    """

    def __init__(
        self,
        min_lr: float = 1e-8,
        max_lr: float = 1.0,
        num_training: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
        beta: float = 0.98,
    ) -> None:
        validate_range(min_lr, max_lr, num_training, mode)
        validate_threshold(early_stop_threshold)
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.num_training = num_training
        self.mode = mode
        self.early_stop_threshold = early_stop_threshold
        self.beta = beta
        self._smoother = EmaSmoother(beta)  # validates beta
        self._schedule = lr_schedule(min_lr, max_lr, num_training, mode)
        self.lrs: list[float] = []
        self.losses: list[float] = []  # smoothed
        self.raw_losses: list[float] = []
        self.best_loss = math.inf
        self.done = False
        self.stop_reason: str | None = None

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
            return self.stop(NON_FINITE_LOSS)
        smoothed = self._smoother.update(loss)
        self.losses.append(smoothed)
        if has_diverged(smoothed, self.best_loss, self.early_stop_threshold):
            return self.stop(DIVERGED)
        self.best_loss = min(self.best_loss, smoothed)
        if len(self.lrs) >= self.num_training:
            return self.stop(COMPLETED)
        return False

    def stop(self, reason: str) -> bool:
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
            stop_reason=self.stop_reason,
            metadata=dict(metadata),
        )


def group_lr_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each param group's LR divided by the first group's, read before the sweep overwrites them.

    The sweep moves the first group's LR; the others keep their ratio to it (e.g. a backbone at 1/10 of the
    head's LR stays at 1/10 at every point of the sweep).
    """
    lrs = [float(group["lr"]) for group in optimizer.param_groups]
    if not lrs:
        raise ValueError("The optimizer has no param groups; give it the model's parameters.")
    first = lrs[0]
    if first == 0:
        if any(lr != 0 for lr in lrs):
            raise ValueError(
                f"The first param group has lr=0 while others do not ({lrs}); the per-group LR ratios are "
                "undefined. Give the first group a non-zero lr (e.g. the other groups' lr)."
            )
        return [1.0] * len(lrs)
    return [lr / first for lr in lrs]


def set_group_lrs(optimizer: torch.optim.Optimizer, lr: float, ratios: list[float]) -> None:
    """Set param group ``i``'s LR to ``lr * ratios[i]`` (in place, tensor LRs too)."""
    for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
        value = lr * ratio
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value
