"""``find_batch_size``: the batch-size search on a plain PyTorch model, optimizer, loss and dataset.

Each trial trains ``steps_per_trial`` real steps at one size; the runner (:mod:`traenslenzor.tuner.batch.runner`) runs
the sizes its search policy chooses, catches out-of-memory errors and measures. Model, optimizer and schedulers are
restored in memory after every trial and at the end. The hooks are ``find_lr``'s: ``step_fn`` for batches
``split_batch`` cannot read, ``to_device`` for batches ``move_to_device`` cannot move, ``amp`` for mixed precision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

import torch
from torch import nn

from traenslenzor.tuner.batch.memory import PeakMemoryMeter, as_device
from traenslenzor.tuner.batch.result import BatchSizeResult
from traenslenzor.tuner.batch.runner import DEFAULTS, BatchSearchSettings, BatchSizeNotFoundError, run_search
from traenslenzor.tuner.batch.search import BatchSizeMode
from traenslenzor.tuner.batching import cycle, model_device, move_to_device
from traenslenzor.tuner.oom import free_memory
from traenslenzor.tuner.state import preserved_training_state
from traenslenzor.tuner.torch_loop import StepFn, default_step, precision


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(dataset: Any, size: int, collate_fn: Callable | None, num_workers: int) -> Iterator[Any]:
    """Batches of ``size`` forever (the loader is restarted when a small dataset runs out)."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=size, shuffle=False, collate_fn=collate_fn, num_workers=num_workers
    )
    return cycle(loader)


def _make_trial(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    compute_loss: StepFn,
    dataset: Any,
    steps: int,
    device: torch.device,
    move: Callable[[Any, torch.device], Any],
    amp: bool,
    collate_fn: Callable | None,
    num_workers: int,
) -> Callable[[int], float]:
    def run_trial(size: int) -> float:
        model.train()
        autocast, scaler = precision(device, amp)  # a fresh scaler per trial: its scale is state of the trial
        batches = _batches(dataset, size, collate_fn, num_workers)
        timed = 0.0
        for step in range(steps):
            batch = move(next(batches), device)
            _sync(device)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = compute_loss(model, batch)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            del batch, loss
            _sync(device)
            if step > 0 or steps == 1:
                timed += time.perf_counter() - start
        return timed

    return run_trial


def find_batch_size(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
    dataset: Any,
    *,
    mode: BatchSizeMode = "auto",  # this entry point's own default: the fewest trials on a real device
    steps_per_trial: int = DEFAULTS.steps_per_trial,
    init_val: int = DEFAULTS.init_val,
    max_trials: int = DEFAULTS.max_trials,
    max_val: int = DEFAULTS.max_val,
    margin: float = DEFAULTS.margin,
    max_memory: int | float | None = DEFAULTS.max_memory,
    collate_fn: Callable | None = None,
    device: torch.device | str | None = None,
    schedulers: Iterable[Any] = (),
    num_workers: int = 0,
    amp: bool = False,
    step_fn: StepFn | None = None,
    to_device: Callable[[Any, torch.device], Any] | None = None,
    progress_bar: bool = True,
    meter: PeakMemoryMeter | None = None,
    clean_up: Callable[[], None] = free_memory,
) -> BatchSizeResult:
    """Find a batch size for a plain PyTorch model, optimizer, loss and dataset.

    Each trial trains ``steps_per_trial`` real steps (``loss_fn(model(inputs), targets)``, or ``step_fn``;
    backward; optimizer step) on batches of the dataset; model, optimizer (and ``schedulers``) are restored in
    memory after every trial and at the end, also on error or KeyboardInterrupt. Nothing is written to disk.

    Args:
        model, optimizer: what to train; ``loss_fn(outputs, targets) -> loss`` (may be None with ``step_fn``).
        dataset: a map-style or iterable ``torch.utils.data.Dataset`` whose items the ``DataLoader`` (with
            ``collate_fn``, ``num_workers``) turns into ``(inputs, targets)`` batches or dicts (see :mod:`batching`).
        mode, steps_per_trial, init_val, max_trials, max_val, margin, max_memory: the search, see
            :class:`~traenslenzor.tuner.batch.runner.BatchSearchSettings`; ``mode`` defaults to ``"auto"`` here.
        device: where to train; default the device of the model's first parameter.
        schedulers: LR schedulers to restore along with the optimizer.
        amp: mixed precision (float16 autocast + GradScaler on CUDA, bfloat16 autocast elsewhere), as ``find_lr``.
        step_fn: ``step_fn(model, batch) -> loss`` for batches ``split_batch`` cannot read.
        to_device: ``to_device(batch, device) -> batch`` for batches ``move_to_device`` cannot move.
        progress_bar, meter, clean_up: see :func:`~traenslenzor.tuner.batch.runner.run_search`.

    Raises:
        ValueError: bad settings, an empty dataset, no loss function (before the model is touched).
        BatchSizeNotFoundError: no size fitted (with remedies).
    """
    settings = BatchSearchSettings(mode, init_val, max_trials, max_val, margin, steps_per_trial, max_memory)
    if step_fn is None and not callable(loss_fn):
        raise ValueError("Pass loss_fn(outputs, targets) -> loss, or step_fn(model, batch) -> loss.")
    device = as_device(device) if device is not None else model_device(model)
    dataset_len = len(dataset) if isinstance(dataset, Sized) else None
    move = to_device or (lambda batch, dev: move_to_device(batch, dev, non_blocking=dev.type == "cuda"))
    compute_loss = step_fn or default_step(loss_fn)
    run_trial = _make_trial(
        model, optimizer, compute_loss, dataset, steps_per_trial, device, move, amp, collate_fn, num_workers
    )
    with preserved_training_state(model, [optimizer], list(schedulers)) as state:
        return run_search(
            run_trial,
            settings,
            dataset_len=dataset_len,
            device=device,
            between_trials=state.restore,  # every trial starts from the user's weights and optimizer state
            progress_bar=progress_bar,
            meter=meter,
            clean_up=clean_up,
        )


__all__ = ["BatchSizeNotFoundError", "find_batch_size"]
