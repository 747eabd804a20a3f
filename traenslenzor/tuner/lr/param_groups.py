"""Optimizer param-group helpers shared by the LR finders: read each group's LR ratio, then move them together.

The sweep moves the first param group's LR; the others keep their ratio to it (a backbone at 1/10 of the head's LR
stays at 1/10 at every point of the sweep).
"""

from __future__ import annotations

import torch


def group_lr_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each param group's LR divided by the first group's, read before the sweep overwrites them."""
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
