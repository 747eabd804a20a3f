"""``find_lr``: the LR range test on a plain PyTorch model, optimizer, loss and data loader (Smith 2015/2017).

The loop trains the real model with the real optimizer for up to ``num_training`` optimizer steps while the LR
sweeps from ``min_lr`` to ``max_lr``; :class:`~traenslenzor.tuner.lr.sweep.RangeTest` records the curve and
decides when to stop. Everything the search changes (weights, buffers, optimizer state, RNGs, train/eval modes, the
loader's sampler generator) is captured once in memory before the first step and restored afterwards -- also when
the search raises or is interrupted.

Cost: the loop adds to each training step setting the LR, one ``.item()`` (the one sync needed to read the loss)
and the fixed-batch probe: a forward pass without gradient on the same ``probe_batches`` batches, joined into one
batch, after every ``PROBE_EVERY``-th (2nd) step (the curve the default suggestion reads,
``traenslenzor.tuner.lr.wall``; 0 switches it off). Measured in ``benchmarks.lr_cost``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from traenslenzor.tuner.batching import concat_batches, cycle, model_device, move_to_device
from traenslenzor.tuner.lr.adaptive import DEFAULT_ADAPTIVE_RANGE, AdaptiveRange, AdaptiveSweep
from traenslenzor.tuner.lr.param_groups import group_lr_ratios, set_group_lrs
from traenslenzor.tuner.lr.result import LRFinderResult
from traenslenzor.tuner.lr.settings import DEFAULT_SWEEP, SweepSettings
from traenslenzor.tuner.lr.sweep import RangeTest
from traenslenzor.tuner.lr.wall import PROBE_BATCHES, PROBE_SEED, probe_due
from traenslenzor.tuner.oom import free_memory, is_oom_error
from traenslenzor.tuner.state import preserved_loader_generators, preserved_training_state
from traenslenzor.tuner.torch_loop import StepFn, default_step, precision

log = logging.getLogger(__name__)


def find_lr(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
    train_loader: Iterable[Any],
    *,
    min_lr: float = DEFAULT_SWEEP.min_lr,
    max_lr: float = DEFAULT_SWEEP.max_lr,
    num_training: int = DEFAULT_SWEEP.num_training,
    mode: str = DEFAULT_SWEEP.mode,
    early_stop_threshold: float | None = DEFAULT_SWEEP.early_stop_threshold,
    beta: float = DEFAULT_SWEEP.beta,
    accumulate_grad_batches: int = 1,
    device: torch.device | str | None = None,
    amp: bool = False,
    step_fn: StepFn | None = None,
    to_device: Callable[[Any, torch.device], Any] | None = None,
    progress_bar: bool = True,
    adaptive_range: AdaptiveRange | None = DEFAULT_ADAPTIVE_RANGE,
    probe_batches: int = PROBE_BATCHES,
    probe_loader: Iterable[Any] | None = None,
) -> LRFinderResult:
    """Run the LR range test and return its curve; the model and optimizer are left exactly as they were.

    Args:
        model: the model to train (put in train mode during the search).
        optimizer: its optimizer; param group ``i`` runs at ``lr * (its lr / first group's lr)``.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar tensor``; may be None when ``step_fn`` is given.
        train_loader: re-iterable batches (a ``DataLoader``); cycled when shorter than the search.
        min_lr: first LR of the sweep.
        max_lr: last LR of the sweep.
        num_training: optimizer steps (curve points) at most.
        mode: ``"exponential"`` or ``"linear"`` sweep.
        early_stop_threshold: stop when the smoothed loss exceeds this multiple of its best; None runs all steps.
        beta: EMA factor of the smoothed loss.
        accumulate_grad_batches: micro-batches per optimizer step; each point is their mean loss.
        device: where batches go; None uses the device of the model's first parameter.
        amp: mixed precision (float16 autocast + GradScaler on CUDA, bfloat16 autocast elsewhere).
        step_fn: ``step_fn(model, batch) -> loss`` for batches ``split_batch`` cannot read.
        to_device: ``to_device(batch, device) -> batch`` for batches ``move_to_device`` cannot move.
        progress_bar: show a tqdm bar with the current LR and loss.
        adaptive_range: widen the sweep where the curve shows no edge (:class:`~traenslenzor.tuner.lr.adaptive.
            AdaptiveRange`): continue past ``max_lr`` when the loss never turned up, restart below ``min_lr`` when
            it blew up at once; recorded in ``metadata["adaptive_range"]``. None keeps the range fixed.
        probe_batches: the first this many batches are set aside and their loss is measured after every 2nd step
            (forward only, no gradient, fixed RNG): ``results["probe_loss"]``, the curve the default suggestion
            reads. 0 measures none (the suggestion then falls back to the ``stable`` rule on the training loss).
        probe_loader: take the probe's batches from this loader (its first ``probe_batches``; e.g. validation
            data) instead of setting training batches aside: the probe curve is then a held-out loss, which shows
            where training starts to hurt data it does not see (a pretrained backbone on few examples, where the
            training loss keeps falling). Every training batch then trains. None (default) probes training batches.

    Returns:
        The :class:`LRFinderResult` (``.results``, ``.suggestion()``, ``.plot()``, ``.diagnostics()``).

    Raises:
        ValueError: bad sweep settings, an empty loader or probe loader, a ``probe_loader`` with
            ``probe_batches=0``, ``accumulate_grad_batches < 1``, no loss function; all raised before any training
            step.
    """
    _check_probe(probe_batches, probe_loader)
    settings = SweepSettings(min_lr, max_lr, num_training, mode, early_stop_threshold, beta)  # validates the sweep
    if adaptive_range is not None and not isinstance(adaptive_range, AdaptiveRange):
        raise TypeError(f"adaptive_range must be an AdaptiveRange or None, got {type(adaptive_range).__name__}.")
    _validate(model, optimizer, loss_fn, train_loader, accumulate_grad_batches, step_fn)
    device = torch.device(device) if device is not None else model_device(model)
    compute_loss = step_fn or default_step(loss_fn)
    move = to_device or (lambda batch, dev: move_to_device(batch, dev, non_blocking=dev.type == "cuda"))
    drive = functools.partial(
        _drive,
        model=model,
        optimizer=optimizer,
        compute_loss=compute_loss,
        train_loader=train_loader,
        move=move,
        device=device,
        accumulate=accumulate_grad_batches,
        amp=amp,
        progress_bar=progress_bar,
        probe_batches=probe_batches,
        probe_loader=probe_loader,
    )
    sweep = AdaptiveSweep(settings, adaptive_range)
    with preserved_training_state(model, [optimizer]) as state:
        test = sweep.run(drive, restore=state.restore)
    log.info("LR range test stopped after %d steps: %s", len(test.lrs), test.stop_reason)
    metadata: dict[str, Any] = {
        "optimizer": type(optimizer).__name__,
        "accumulate_grad_batches": accumulate_grad_batches,
        "amp": bool(amp),
        "device": str(device),
        "probe_batches": probe_batches,
        "probe_source": "train_loader" if probe_loader is None else "probe_loader",
        "probe_forward_passes": probe_batches * sum(probe_due(i) for i in range(len(test.probe_losses))),
    }
    return test.result(**metadata, **sweep.metadata(test))


def _check_probe(probe_batches: int, probe_loader: Iterable[Any] | None) -> None:
    if not isinstance(probe_batches, int) or isinstance(probe_batches, bool) or probe_batches < 0:
        raise ValueError(f"probe_batches={probe_batches!r}: must be an integer >= 0 (0 measures no probe curve).")
    if probe_loader is not None and probe_batches == 0:
        raise ValueError(
            "probe_loader is given but probe_batches=0 measures no probe: set probe_batches >= 1 (default "
            f"{PROBE_BATCHES}) or drop probe_loader."
        )
    if probe_loader is not None and not hasattr(probe_loader, "__iter__"):
        raise TypeError(f"probe_loader must be iterable (e.g. a DataLoader), got {type(probe_loader).__name__}.")


def _drive(
    test: RangeTest,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    compute_loss: StepFn,
    train_loader: Iterable[Any],
    move: Callable[[Any, torch.device], Any],
    device: torch.device,
    accumulate: int,
    amp: bool,
    progress_bar: bool,
    probe_batches: int,
    probe_loader: Iterable[Any] | None = None,
) -> None:
    """Train one optimizer step per recorded point until ``test`` says stop (loader generators restored after).

    The first ``probe_batches`` batches (of ``probe_loader`` when given, else set aside from the training loader)
    are the probe; their loss is measured after every ``PROBE_EVERY``-th step (``_probe_loss``).
    """
    settings = test.settings
    log.info(
        "LR range test: up to %d steps, %s sweep %.2e -> %.2e",
        settings.num_training,
        settings.mode,
        settings.min_lr,
        settings.max_lr,
    )
    ratios = group_lr_ratios(optimizer)
    autocast, scaler = precision(device, amp)
    with (
        preserved_loader_generators(train_loader),
        preserved_loader_generators(probe_loader),
        tqdm(total=test.num_training, desc="LR range test", disable=not progress_bar, leave=False) as bar,
    ):
        model.train()
        batches = cycle(train_loader)
        try:
            probe = _Probe(_probe_batches(batches, probe_loader, probe_batches), move, device)
            while not test.done:
                lr = test.lr_at(len(test.lrs))
                set_group_lrs(optimizer, lr, ratios)
                value = _train_step(model, optimizer, compute_loss, batches, move, device, accumulate, autocast, scaler)
                due = probe.batches and probe_due(len(test.lrs))
                test.record(lr, value, probe.loss(model, compute_loss, autocast) if due else None)
                bar.total = test.num_training  # an extension lengthens the sweep
                bar.update(1)
                bar.set_postfix_str(f"lr={lr:.2e} loss={value:.4g}", refresh=False)
        finally:
            batches.close()  # type: ignore[attr-defined]  # releases the loader's iterator (and its workers)


def _probe_batches(batches: Iterator[Any], probe_loader: Iterable[Any] | None, count: int) -> list[Any]:
    """The probe's batches: the next ``count`` training batches, or the first ``count`` of ``probe_loader``."""
    if probe_loader is None:
        return [next(batches) for _ in range(count)]
    source = iter(probe_loader)
    try:
        taken = list(itertools.islice(source, count))
    finally:
        close = getattr(source, "close", None)  # a generator; a DataLoader's iterator ends its workers when dropped
        if callable(close):
            close()
    if not taken:
        raise ValueError("probe_loader yielded no batch: give it at least one (e.g. a validation DataLoader).")
    return taken


def _train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    compute_loss: StepFn,
    batches: Iterator[Any],
    move: Callable[[Any, torch.device], Any],
    device: torch.device,
    accumulate: int,
    autocast: Callable[[], Any],
    scaler: Any,
) -> float:
    """One optimizer step over ``accumulate`` micro-batches; their mean loss (the one sync per step)."""
    optimizer.zero_grad(set_to_none=True)
    total = None
    for _ in range(accumulate):
        batch = move(next(batches), device)
        with autocast():
            loss = _check_scalar(compute_loss(model, batch))
        scaled = loss / accumulate if accumulate > 1 else loss
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        total = loss.detach() if total is None else total + loss.detach()
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return total.item() / accumulate  # type: ignore[union-attr]


class _Probe:
    """The set-aside probe batches, measured in one forward pass where they join (the same samples, a fraction of
    the per-call overhead on small models).

    Joined, that pass holds ``len(batches)`` times a training batch: right after ``find_batch_size`` found the
    largest batch that fits, it can run out of memory. Then the batches are measured one by one from there on.
    """

    def __init__(self, batches: list[Any], move: Callable[[Any, torch.device], Any], device: torch.device) -> None:
        self._move, self._device = move, device
        self._apart = batches
        joined = concat_batches(batches) if len(batches) > 1 else None
        self.batches = [move(joined, device)] if joined is not None else [move(b, device) for b in batches]

    def loss(self, model: nn.Module, compute_loss: StepFn, autocast: Callable[[], Any]) -> float:
        """The mean probe loss now (see :func:`_probe_loss`)."""
        try:
            return _probe_loss(model, compute_loss, self.batches, autocast, self._device)
        except Exception as exc:
            if len(self.batches) == len(self._apart) or not is_oom_error(exc):
                raise
        self.batches = [self._move(b, self._device) for b in self._apart]  # the joined batch is dropped first
        free_memory()
        return _probe_loss(model, compute_loss, self.batches, autocast, self._device)


@torch.no_grad()
def _probe_loss(
    model: nn.Module, compute_loss: StepFn, probe: list[Any], autocast: Callable[[], Any], device: torch.device
) -> float:
    """Mean loss on the probe batches (already on ``device``), forward only; the same RNG draws (dropout masks)
    every time."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(PROBE_SEED)
        total = None
        for batch in probe:
            with autocast():
                loss = compute_loss(model, batch).detach().float()
            total = loss if total is None else total + loss
    return total.item() / len(probe)  # type: ignore[union-attr]


def _validate(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor] | None,
    train_loader: Iterable[Any],
    accumulate_grad_batches: int,
    step_fn: StepFn | None,
) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}.")
    group_lr_ratios(optimizer)  # raises on groups whose ratios are undefined
    if step_fn is None and not callable(loss_fn):
        raise ValueError("Pass loss_fn(outputs, targets) -> loss, or step_fn(model, batch) -> loss.")
    if (
        not isinstance(accumulate_grad_batches, int)
        or isinstance(accumulate_grad_batches, bool)
        or accumulate_grad_batches < 1
    ):
        raise ValueError(
            f"accumulate_grad_batches={accumulate_grad_batches!r}: must be an integer >= 1 "
            "(micro-batches per optimizer step; 1 means no accumulation)."
        )
    if not hasattr(train_loader, "__iter__"):
        raise TypeError(f"train_loader must be iterable (e.g. a DataLoader), got {type(train_loader).__name__}.")
    length = None
    with contextlib.suppress(TypeError, NotImplementedError):
        length = len(train_loader)  # type: ignore[arg-type]
    if length == 0:
        raise ValueError(
            "train_loader is empty (len 0): the range test needs batches. Check the dataset size, and "
            "drop_last=True with a dataset smaller than the batch size."
        )


def _check_scalar(loss: Any) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(
            f"The loss must be a scalar tensor, got {shape}. Use a reduction (e.g. reduction='mean') "
            "or return loss.mean() from step_fn."
        )
    return loss
