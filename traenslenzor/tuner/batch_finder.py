"""The batch-size finder: runs trials for a search policy, catches out-of-memory, measures, restores.

Two entry points share one runner:

* :func:`search_batch_size` takes a trial callable ``run_trial(batch_size)`` and knows nothing of models; the
  Lightning adapter builds on it.
* :func:`find_batch_size` runs trials on a plain PyTorch model, optimizer, loss and dataset, restoring the model
  and optimizer in memory between trials and at the end.

The policy (which size next, see :mod:`batch_search`) is apart from the execution here: catching only
:func:`is_oom_error` errors, freeing memory after one, measuring each trial's peak memory, holding trials to the
memory budget, and never returning a size that was not run successfully.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .batch_result import BatchSizeResult, BatchSizeTrial
from .batch_search import DEFAULT_MARGIN, SEARCH_POLICIES, SearchPolicy
from .batching import cycle, model_device, move_to_device, split_batch
from .memory import PeakMemoryMeter, address_space_limited, as_device, check_max_memory, resolve_budget
from .oom import free_memory, is_oom_error, pin_mmap_threshold, release_heap
from .state import preserved_training_state

log = logging.getLogger(__name__)

# Either name sets the size of oneDNN's primitive cache (DNNL_ is the older spelling).
ONEDNN_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")

REMEDIES = (
    'reduce the image resolution (or sequence length), enable mixed precision (precision="16-mixed"), or train '
    "with a small batch and gradient accumulation (accumulate_grad_batches)"
)


class BatchSizeNotFoundError(RuntimeError):
    """No batch size fitted: even the smallest size tried ran out of memory (or over the budget)."""


def check_search_settings(
    mode: str,
    init_val: int,
    max_trials: int,
    max_val: int,
    margin: float,
    steps_per_trial: int,
    max_memory: int | float | None = None,
    dataset_len: int | None = None,
) -> None:
    """Raise ``ValueError`` naming the setting and its allowed values; the one check both entry points and the
    Lightning callback run before any trial."""
    if mode not in SEARCH_POLICIES:
        raise ValueError(f"Unknown batch-size search mode {mode!r}; choose one of {sorted(SEARCH_POLICIES)}.")
    for name, value in (("init_val", init_val), ("max_trials", max_trials), ("steps_per_trial", steps_per_trial)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    if isinstance(max_val, bool) or not isinstance(max_val, int) or max_val < init_val:
        raise ValueError(f"max_val must be an integer >= init_val={init_val}, got {max_val!r}.")
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must lie in [0, 1) (0.02 keeps a 2 % safety buffer), got {margin!r}.")
    if dataset_len is not None and dataset_len < 1:
        raise ValueError(f"The dataset is empty (dataset_len={dataset_len}); there is no batch to try.")
    check_max_memory(max_memory)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _run_trial(
    run_trial: Callable[[int], float | None],
    size: int,
    steps: int,
    meter: PeakMemoryMeter,
    budget: int | None,
    device: torch.device,
) -> BatchSizeTrial:
    """One trial; out-of-memory errors become a failed trial, every other error propagates."""
    # The previous trial's freed memory must not count towards this one's peak: on CPU the C heap keeps it
    # resident; on CUDA the caching allocator keeps it reserved, and blocks cut for another size are not reused,
    # so without this a trial after a larger one measured that one's peak (seen on an H200: every trial after an
    # over-budget 2877 "peaked" at its 13.5 GiB).
    release_heap()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    start = time.perf_counter()
    error = None
    timed = None
    meter.start()
    try:
        timed = run_trial(size)
    except Exception as exc:
        if not is_oom_error(exc):
            raise
        error = _short(exc)
        # `exc` (and the frames its traceback holds: the batch, outputs, graph) is released when this block ends.
    seconds = time.perf_counter() - start
    if error is not None:
        free_memory()
        return BatchSizeTrial(size, False, None, None, seconds, error)
    peak = meter.stop()
    if timed is None:
        timed, timed_steps = seconds, steps
    else:
        timed_steps = max(1, steps - 1)
    sps = size * timed_steps / timed if timed and timed > 0 else None
    if budget is not None and peak is not None and peak > budget:
        error = f"peak memory {peak / 2**20:.1f} MiB exceeds the budget of {budget / 2**20:.1f} MiB"
        return BatchSizeTrial(size, False, peak, sps, seconds, error)
    return BatchSizeTrial(size, True, peak, sps, seconds, None)


def _not_found(policy: SearchPolicy, max_trials: int) -> BatchSizeNotFoundError:
    sizes = [t.batch_size for t in policy.trials]
    last = policy.trials[-1].error if policy.trials else "no trial ran"
    if 1 in sizes:
        return BatchSizeNotFoundError(f"Even batch size 1 does not fit in memory ({last}). To make it fit: {REMEDIES}.")
    return BatchSizeNotFoundError(
        f"No batch size fitted within max_trials={max_trials} (tried {sizes}; last error: {last}). "
        f"Lower init_val or raise max_trials; if small sizes do not fit either: {REMEDIES}."
    )


def _trial_runner(
    run_trial: Callable[[int], float | None],
    steps: int,
    meter: PeakMemoryMeter,
    between_trials: Callable[[], None] | None,
    device: torch.device,
) -> Callable[[int, int | None], BatchSizeTrial]:
    """``run(size, budget)``: one trial, then ``between_trials`` however it ended."""

    def run(size: int, budget: int | None) -> BatchSizeTrial:
        try:
            return _run_trial(run_trial, size, steps, meter, budget, device)
        finally:
            if between_trials is not None:
                between_trials()

    return run


def _drive(
    policy: SearchPolicy,
    run: Callable[[int, int | None], BatchSizeTrial],
    max_trials: int,
    bar: tqdm | None,
    budget_now: Callable[[], int | None] | None,
) -> None:
    """Feed trials to ``policy`` until it is done or ``max_trials`` sizes have fitted.

    As in Lightning, failed trials do not count towards ``max_trials`` (each one narrows the search); a hard cap
    of ``2 * max_trials + 8`` trials in all keeps a pathological device from looping. ``budget_now``, if given,
    re-reads the default budget before each trial (what the process can reach drifts as caches grow).
    """
    while True:
        fitted = sum(t.fits for t in policy.trials)
        if fitted >= max_trials or len(policy.trials) >= 2 * max_trials + 8:
            policy.stop_at_cap(f"stopped after max_trials={max_trials} ({len(policy.trials)} trials)")
            return
        if budget_now is not None and policy.trials:
            policy.budget = budget_now()
        size = policy.propose()
        if size is None:
            return
        trial = run(size, policy.budget)
        policy.observe(trial)
        log.info("batch size %d %s", size, "fits" if trial.fits else f"does not fit ({trial.error})")
        if bar is not None:
            bar.set_postfix(size=size, fits=trial.fits)
            bar.update()


def _prepare_for_address_space_limit() -> None:
    """Under ``RLIMIT_AS`` on CPU: pin the mmap threshold, and warn if oneDNN's primitive cache is left on.

    oneDNN keeps a compiled convolution per input shape, about 7 MiB of address space each (measured on the
    benchmark's CNNs), for the rest of the process. Every batch size tried then shrinks the room left, and sizes
    that fitted earlier in the search stop fitting. The cache size is read once, when oneDNN starts, so only the
    environment of a new process can turn it off.
    """
    if pin_mmap_threshold():
        log.info("Address-space limit set: pinned glibc's mmap threshold so that failed trials do not fragment it.")
    if torch.backends.mkldnn.is_available() and not any(name in os.environ for name in ONEDNN_CACHE_VARIABLES):
        log.warning(
            "Address-space limit set and oneDNN's primitive cache is on: every batch size tried keeps ~7 MiB of "
            "address space for the rest of the process, so later trials have less room. Start Python with "
            "ONEDNN_PRIMITIVE_CACHE_CAPACITY=0 for a search under an address-space limit (ulimit -v)."
        )


def search_batch_size(
    run_trial: Callable[[int], float | None],
    *,
    mode: str = "power",
    init_val: int = 2,
    max_trials: int = 25,
    max_val: int = 8192,
    margin: float = DEFAULT_MARGIN,
    steps_per_trial: int = 3,
    max_memory: int | float | None = None,
    dataset_len: int | None = None,
    device: torch.device | str | None = None,
    between_trials: Callable[[], None] | None = None,
    progress_bar: bool = True,
    meter: PeakMemoryMeter | None = None,
) -> BatchSizeResult:
    """Search for a batch size by running trials, and return every trial and the chosen size.

    Args:
        run_trial: ``run_trial(b)`` runs ``steps_per_trial`` full training steps (forward, backward, optimizer
            step) at batch size ``b``. It returns the seconds spent in the timed steps -- steps 2 to
            ``steps_per_trial`` (the first is warm-up: optimizer state, kernel selection), or the single step when
            ``steps_per_trial == 1`` -- or None, and then the whole call is timed as ``steps_per_trial`` steps.
            It signals "does not fit" by letting the out-of-memory error propagate.
        mode: a key of ``SEARCH_POLICIES``: ``"power"``, ``"binsearch"``, ``"auto"`` or ``"throughput"``.
        init_val: the first size tried.
        max_trials: most trials that fit (failed trials are not counted, as in Lightning's binsearch).
        max_val: largest size proposed.
        margin: ``binsearch``: the final size is reduced by this fraction (and verified); ``auto``: the search stops
            once the largest fit is within this fraction of the smallest failure.
        steps_per_trial: training steps per trial (used to compute samples/s).
        max_memory: budget for a trial's peak memory: bytes, or a fraction in (0, 1] of the device's total; a
            trial over it does not fit. Default: what the process can reach (see :mod:`memory`).
        dataset_len: length of the dataset; sizes are capped to it.
        device: where the trials run (for memory measurement); default the current CUDA device, else the CPU.
        between_trials: called after every trial, also a failed one, before the next (restore state there).
        progress_bar: show a tqdm bar over the trials.
        meter: measures a trial's peak memory (``start()``, ``stop() -> bytes | None``); default a
            :class:`PeakMemoryMeter` for ``device``. Pass your own for devices without allocator statistics or a
            simulated device.

    Returns:
        A :class:`BatchSizeResult` whose ``batch_size`` ran successfully in this search.

    Raises:
        ValueError: bad arguments (before any trial).
        BatchSizeNotFoundError: no size fitted (with remedies).
    """
    check_search_settings(mode, init_val, max_trials, max_val, margin, steps_per_trial, max_memory, dataset_len)
    device = as_device(device)
    cap = max_val if dataset_len is None else min(max_val, dataset_len)
    if cap < init_val:
        log.info("init_val=%d exceeds the dataset length %d; starting at %d.", init_val, dataset_len, cap)
    budget = resolve_budget(max_memory, device)
    policy = SEARCH_POLICIES[mode](
        init_val=min(init_val, cap), max_val=cap, margin=margin, budget=budget, adaptive_peaks=device.type == "cuda"
    )
    meter = meter if meter is not None else PeakMemoryMeter(device)
    if device.type == "cpu" and address_space_limited():
        _prepare_for_address_space_limit()
    run = _trial_runner(run_trial, steps_per_trial, meter, between_trials, device)
    budget_now = (lambda: resolve_budget(None, device)) if max_memory is None else None
    # No tqdm object at all without a bar: its monitor thread would reserve a 64 MiB malloc arena.
    bar = tqdm(total=max_trials, desc=f"batch size ({mode})", leave=False) if progress_bar else None
    try:
        _drive(policy, run, max_trials, bar, budget_now)
    finally:
        if bar is not None:
            bar.close()
        # Hand back the blocks the trials cached: what runs next (an LR search, training) at the chosen size then
        # starts from an empty allocator cache instead of one fragmented by the trials' other sizes.
        free_memory()
    best = policy.best
    if best is None:
        raise _not_found(policy, max_trials)
    settings = {
        "init_val": init_val,
        "max_val": max_val,
        "max_trials": max_trials,
        "margin": margin,
        "steps_per_trial": steps_per_trial,
        "dataset_len": dataset_len,
    }
    return BatchSizeResult(best, mode, tuple(policy.trials), policy.reason, policy.budget, str(device), settings)


# -- plain PyTorch ----------------------------------------------------------------------------------------------


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
    loss_fn: Callable,
    dataset: Any,
    steps: int,
    device: torch.device,
    collate_fn: Callable | None,
    num_workers: int,
) -> Callable[[int], float]:
    def run_trial(size: int) -> float:
        model.train()
        batches = _batches(dataset, size, collate_fn, num_workers)
        timed = 0.0
        for step in range(steps):
            inputs, targets = split_batch(move_to_device(next(batches), device))
            _sync(device)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            del inputs, targets, loss
            _sync(device)
            if step > 0 or steps == 1:
                timed += time.perf_counter() - start
        return timed

    return run_trial


def find_batch_size(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    dataset: Any,
    *,
    mode: str = "auto",
    steps_per_trial: int = 3,
    collate_fn: Callable | None = None,
    device: torch.device | str | None = None,
    schedulers: Iterable[Any] = (),
    num_workers: int = 0,
    **search_kwargs: Any,
) -> BatchSizeResult:
    """Find a batch size for a plain PyTorch model, optimizer, loss and dataset.

    Each trial trains ``steps_per_trial`` real steps (``loss_fn(model(inputs), targets)``, backward, optimizer
    step) on batches of the dataset; model, optimizer (and ``schedulers``) are restored in memory after every
    trial and at the end, also on error or KeyboardInterrupt. Nothing is written to disk.

    Args:
        dataset: a map-style or iterable ``torch.utils.data.Dataset`` whose items the ``DataLoader`` (with
            ``collate_fn``) turns into ``(inputs, targets)`` batches or dicts (see :mod:`batching`).
        mode: a key of ``SEARCH_POLICIES``; ``"auto"`` by default.
        device: where to train; default the device of the model's first parameter.
        **search_kwargs: ``init_val``, ``max_trials``, ``max_val``, ``margin``, ``max_memory``, ``progress_bar``,
            ``meter`` as for :func:`search_batch_size` (same defaults); any other name raises ``TypeError``
            before the model is touched.
    """
    unknown = sorted(set(search_kwargs) - set(_SEARCH_OPTIONS))
    if unknown:
        raise TypeError(f"find_batch_size got unknown settings {unknown}; choose from {sorted(_SEARCH_OPTIONS)}.")
    settings = {**_SEARCH_OPTIONS, **search_kwargs}
    device = as_device(device) if device is not None else model_device(model)
    dataset_len = len(dataset) if isinstance(dataset, Sized) else None
    check_search_settings(
        mode,
        settings["init_val"],
        settings["max_trials"],
        settings["max_val"],
        settings["margin"],
        steps_per_trial,
        settings["max_memory"],
        dataset_len,
    )
    run_trial = _make_trial(model, optimizer, loss_fn, dataset, steps_per_trial, device, collate_fn, num_workers)
    with preserved_training_state(model, [optimizer], list(schedulers)) as state:
        return search_batch_size(
            run_trial,
            mode=mode,
            steps_per_trial=steps_per_trial,
            dataset_len=dataset_len,
            device=device,
            between_trials=state.restore,
            **search_kwargs,
        )


# The settings find_batch_size passes through, with search_batch_size's defaults (one place for them).
_SEARCH_OPTIONS = {
    name: parameter.default
    for name, parameter in inspect.signature(search_batch_size).parameters.items()
    if name in ("init_val", "max_trials", "max_val", "margin", "max_memory", "progress_bar", "meter")
}


__all__ = ["REMEDIES", "BatchSizeNotFoundError", "check_search_settings", "find_batch_size", "search_batch_size"]
