"""Learning-rate sweeps for the LR range test (Smith 2015/2017, "Cyclical Learning Rates").

A sweep visits ``num_steps`` learning rates from ``min_lr`` to ``max_lr``: the first point is exactly ``min_lr``,
the last exactly ``max_lr``. The exponential sweep keeps the ratio between neighbours constant (uniform in log LR,
the usual choice because good LRs span decades); the linear sweep keeps the difference constant.
Everything here is a pure function of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real


def _check_step(step: int, num_steps: int) -> None:
    if num_steps < 2:
        raise ValueError(f"num_steps={num_steps}: a sweep needs at least 2 points.")
    if not 0 <= step < num_steps:
        raise ValueError(f"step={step} is outside the sweep of {num_steps} points (0 .. {num_steps - 1}).")


def exponential_lr(min_lr: float, max_lr: float, step: int, num_steps: int) -> float:
    """LR at ``step`` of an exponential sweep: ``min_lr * (max_lr / min_lr) ** (step / (num_steps - 1))``."""
    _check_step(step, num_steps)
    if step == num_steps - 1:
        return float(max_lr)  # exact end point, free of rounding in the power
    return float(min_lr) * (max_lr / min_lr) ** (step / (num_steps - 1))


def linear_lr(min_lr: float, max_lr: float, step: int, num_steps: int) -> float:
    """LR at ``step`` of a linear sweep: ``min_lr + (max_lr - min_lr) * step / (num_steps - 1)``."""
    _check_step(step, num_steps)
    if step == num_steps - 1:
        return float(max_lr)
    return float(min_lr) + (max_lr - min_lr) * step / (num_steps - 1)


SCHEDULES: dict[str, Callable[[float, float, int, int], float]] = {
    "exponential": exponential_lr,
    "linear": linear_lr,
}


def lr_schedule(min_lr: float, max_lr: float, num_steps: int, mode: str = "exponential") -> list[float]:
    """All ``num_steps`` learning rates of a sweep, first exactly ``min_lr``, last exactly ``max_lr``."""
    validate_range(min_lr, max_lr, num_steps, mode)
    rule = SCHEDULES[mode]
    return [rule(min_lr, max_lr, step, num_steps) for step in range(num_steps)]


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def validate_range(min_lr: float, max_lr: float, num_training: int, mode: str) -> None:
    """Raise ``ValueError`` naming the problem and the fix if the sweep parameters cannot make a range test."""
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        if not _is_real(value) or not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"{name}={value!r}: learning rates must be positive finite numbers. Use e.g. min_lr=1e-8, max_lr=1.0."
            )
    if min_lr >= max_lr:
        raise ValueError(
            f"min_lr={min_lr!r} must be smaller than max_lr={max_lr!r}: the sweep runs from min_lr up to max_lr. "
            "Swap them or widen the range (e.g. min_lr=1e-8, max_lr=1.0)."
        )
    if not isinstance(num_training, int) or isinstance(num_training, bool) or num_training < 2:
        raise ValueError(
            f"num_training={num_training!r}: the range test needs an integer of at least 2 steps "
            "(100 is usual; more gives a smoother curve)."
        )
    if mode not in SCHEDULES:
        raise ValueError(f"mode={mode!r} is not a known sweep; use one of {sorted(SCHEDULES)}.")
