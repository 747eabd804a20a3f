"""The plain-PyTorch training step both finders run: how a loss is computed from a batch, and in which precision.

``find_lr`` and ``find_batch_size`` take the same ``step_fn``/``loss_fn`` and ``amp`` arguments; this module is the
one place that turns them into a step, so the two searches train exactly alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from traenslenzor.tuner.batching import split_batch

StepFn = Callable[[nn.Module, Any], torch.Tensor]
"""``step_fn(model, batch) -> scalar loss``: the forward pass and loss of one batch."""


def default_step(loss_fn: Callable[[Any, Any], torch.Tensor]) -> StepFn:
    """The step for an ``(inputs, targets)`` batch: ``loss_fn(model(inputs), targets)``."""

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        inputs, targets = split_batch(batch)
        return loss_fn(model(inputs), targets)

    return step


def precision(device: torch.device, amp: bool) -> tuple[Callable[[], Any], Any]:
    """The autocast context factory and GradScaler for ``amp``: float16 with a scaler on CUDA, bfloat16 elsewhere.

    A fresh scaler each call: its scale is state of one search, never carried into the next.
    """
    if not amp:
        return contextlib.nullcontext, None
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16), None
