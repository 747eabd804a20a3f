"""Snapshot and exact restore of everything a tuning run changes.

A tuning run (LR range test, batch-size trials) trains the real model with the real optimizer. Afterwards the
model must be exactly as it was: parameter values and gradients, buffers (BatchNorm statistics), optimizer state
and hyper-parameters, LR scheduler state, RNG states and the train/eval mode of every submodule.

The snapshot lives in memory as CPU copies, never in a checkpoint file. Restoring copies values back *into the
existing objects* (parameters, optimizer ``param_groups`` dicts, ``optimizer.state``) so that every reference
held elsewhere -- an LR scheduler, a Lightning trainer, a user's variable -- stays valid.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


def _cpu_copy(value: Any) -> Any:
    """A detached CPU copy of a tensor (same dtype), a deep copy of anything else."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    return copy.deepcopy(value)


def _copy_back(saved: Any, device: torch.device | None) -> Any:
    if isinstance(saved, torch.Tensor):
        return saved.to(device if device is not None else "cpu", copy=True)
    return copy.deepcopy(saved)


@dataclass
class _TensorSnapshot:
    tensor: torch.Tensor  # the live tensor (parameter or buffer)
    value: torch.Tensor  # CPU copy of its data
    grad: torch.Tensor | None  # CPU copy of its gradient, if any


@dataclass
class _OptimizerSnapshot:
    optimizer: torch.optim.Optimizer
    groups: list[dict[str, tuple[Any, torch.device | None]]]  # every key but "params"
    state: dict[torch.Tensor, dict[str, tuple[Any, torch.device | None]]]


@dataclass
class _RngSnapshot:
    python: Any
    numpy: Any
    torch_cpu: torch.Tensor
    cuda: list[torch.Tensor] | None

    @classmethod
    def capture(cls) -> _RngSnapshot:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda)

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


@dataclass
class TrainingState:
    """What a tuning run may change, captured so that :meth:`restore` puts it back exactly.

    Use :meth:`capture` to build one; :func:`preserved_training_state` wraps capture and restore around a block.
    """

    tensors: list[_TensorSnapshot]
    modes: list[tuple[nn.Module, bool]]
    optimizers: list[_OptimizerSnapshot] = field(default_factory=list)
    schedulers: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    rng: _RngSnapshot | None = None

    @classmethod
    def capture(
        cls,
        model: nn.Module,
        optimizers: Iterable[torch.optim.Optimizer] = (),
        schedulers: Iterable[Any] = (),
        *,
        rng: bool = True,
    ) -> TrainingState:
        """Copy the state of ``model``, ``optimizers``, ``schedulers`` (and the RNGs) to CPU memory."""
        tensors = []
        seen: set[int] = set()
        live = [t for _, t in model.named_parameters(remove_duplicate=False)]
        live += [t for _, t in model.named_buffers(remove_duplicate=False)]
        for tensor in live:
            if tensor is None or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            grad = _cpu_copy(tensor.grad) if tensor.grad is not None else None
            tensors.append(_TensorSnapshot(tensor, _cpu_copy(tensor), grad))
        modes = [(module, module.training) for module in model.modules()]
        return cls(
            tensors=tensors,
            modes=modes,
            optimizers=[_capture_optimizer(opt) for opt in optimizers],
            schedulers=[(s, copy.deepcopy(s.state_dict())) for s in schedulers],
            rng=_RngSnapshot.capture() if rng else None,
        )

    def restore(self) -> None:
        """Write every captured value back into the live objects."""
        with torch.no_grad():
            for snap in self.tensors:
                snap.tensor.copy_(snap.value)
                if snap.grad is None:
                    snap.tensor.grad = None
                else:
                    snap.tensor.grad = snap.grad.to(snap.tensor.device, copy=True)
        for module, training in self.modes:
            module.training = training
        for snap in self.optimizers:
            _restore_optimizer(snap)
        for scheduler, state in self.schedulers:
            scheduler.load_state_dict(copy.deepcopy(state))
        if self.rng is not None:
            self.rng.restore()


def _with_device(value: Any) -> tuple[Any, torch.device | None]:
    """A CPU copy of ``value`` and the device to restore it to (None for non-tensors)."""
    return _cpu_copy(value), value.device if isinstance(value, torch.Tensor) else None


def _capture_optimizer(optimizer: torch.optim.Optimizer) -> _OptimizerSnapshot:
    groups = [{k: _with_device(v) for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    state = {param: {k: _with_device(v) for k, v in s.items()} for param, s in optimizer.state.items()}
    return _OptimizerSnapshot(optimizer, groups, state)


def _restore_optimizer(snap: _OptimizerSnapshot) -> None:
    # In place: schedulers and trainers hold references to the group dicts and to `optimizer.state`.
    for group, saved in zip(snap.optimizer.param_groups, snap.groups, strict=True):
        params = group["params"]
        group.clear()
        group.update({k: _copy_back(v, device) for k, (v, device) in saved.items()})
        group["params"] = params
    snap.optimizer.state.clear()
    for param, saved_state in snap.state.items():
        snap.optimizer.state[param] = {k: _copy_back(v, device) for k, (v, device) in saved_state.items()}


@contextmanager
def preserved_training_state(
    model: nn.Module,
    optimizers: Iterable[torch.optim.Optimizer] = (),
    schedulers: Iterable[Any] = (),
    *,
    rng: bool = True,
) -> Iterator[TrainingState]:
    """Capture the training state, run the block, and restore the state however the block ends.

    The restore also runs on ``KeyboardInterrupt``; the interrupt is re-raised afterwards.
    """
    state = TrainingState.capture(model, list(optimizers), list(schedulers), rng=rng)
    try:
        yield state
    finally:
        state.restore()


@contextmanager
def preserved_loader_generators(loader: Any) -> Iterator[None]:
    """Put back the state of every ``torch.Generator`` that ``loader`` or its samplers own after the block.

    Shuffling draws from them, so a search's batches would otherwise change the batch order of the training that
    follows (the global RNGs are :class:`TrainingState`'s).
    """
    holders = [loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)]
    holders.append(getattr(holders[2], "sampler", None))
    generators = {id(g): g for h in holders if isinstance(g := getattr(h, "generator", None), torch.Generator)}
    states = [(g, g.get_state()) for g in generators.values()]
    try:
        yield
    finally:
        for generator, state in states:
            generator.set_state(state)
