"""Carry a tuned learning rate to another batch size.

An LR found at one batch size is not right at another. Two scaling rules are in common use:

- **linear** (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): for SGD-family optimizers the gradient-noise
  scale is kept when ``lr / batch`` is kept, so the LR scales with ``to_batch / from_batch``;
- **sqrt** (Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms"): for Adam-family
  optimizers the matching rule scales the LR with ``sqrt(to_batch / from_batch)``.

For AdamW, Wang & Aitchison (2024, "How to set AdamW's weight decay as you scale model and dataset size") show that
the product ``lr x weight_decay`` sets the timescale of the decay; :func:`rescale_weight_decay` keeps that product
fixed when the LR moves.

Both rules are approximations. They break for large batches past the gradient-noise scale (McCandlish et al.
2018; for Adam, Li et al. 2024 "Surge phenomenon in optimal learning rate and batch size scaling"), so callers log
the rescale and let the user switch it off.
"""

from __future__ import annotations

import math
from typing import Literal

RescaleRule = Literal["linear", "sqrt"]

# Lower-cased ``type(optimizer).__name__`` values: SGD-family optimizers follow the linear rule; every other
# optimizer we know adapts per parameter (Adam-family) and follows the square-root rule.
LINEAR_RULE_OPTIMIZERS = frozenset({"sgd", "lars", "lamb_sgd"})
SQRT_RULE_OPTIMIZERS = frozenset({"adam", "adamw", "nadam", "radam", "adamax", "rmsprop", "adagrad", "lamb"})


def rule_for_optimizer(name: str) -> RescaleRule:
    """The scaling rule for an optimizer, by class or config name (``"SGD"``, ``"AdamW"``, ...).

    Raises:
        ValueError: for an optimizer whose family is not known, naming the known ones.
    """
    key = name.strip().lower()
    if key in LINEAR_RULE_OPTIMIZERS:
        return "linear"
    if key in SQRT_RULE_OPTIMIZERS:
        return "sqrt"
    known = ", ".join(sorted(LINEAR_RULE_OPTIMIZERS | SQRT_RULE_OPTIMIZERS))
    raise ValueError(
        f"no LR scaling rule is known for optimizer {name!r}; known: {known}. Pass rule='linear' or rule='sqrt'."
    )


def rescale_lr(lr: float, *, from_batch: int, to_batch: int, rule: RescaleRule) -> float:
    """``lr`` found at ``from_batch``, carried to ``to_batch`` by ``rule``.

    >>> rescale_lr(0.1, from_batch=64, to_batch=256, rule="linear")
    0.4
    >>> rescale_lr(3e-3, from_batch=64, to_batch=256, rule="sqrt")
    0.006
    """
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    for label, batch in (("from_batch", from_batch), ("to_batch", to_batch)):
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"{label} must be a positive integer, got {batch!r}")
    ratio = to_batch / from_batch
    if rule == "linear":
        return lr * ratio
    if rule == "sqrt":
        return lr * math.sqrt(ratio)
    raise ValueError(f"rule must be 'linear' or 'sqrt', got {rule!r}")


def rescale_weight_decay(weight_decay: float, *, old_lr: float, new_lr: float) -> float:
    """AdamW's decoupled weight decay that keeps ``lr x weight_decay`` unchanged when the LR moves.

    >>> rescale_weight_decay(0.01, old_lr=1e-3, new_lr=2e-3)
    0.005
    """
    if weight_decay < 0 or not math.isfinite(weight_decay):
        raise ValueError(f"weight_decay must be a non-negative finite number, got {weight_decay!r}")
    if not (old_lr > 0 and new_lr > 0):
        raise ValueError(f"learning rates must be positive, got old_lr={old_lr!r}, new_lr={new_lr!r}")
    return weight_decay * old_lr / new_lr
