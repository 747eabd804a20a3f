"""The batch-size search runner: runs trials for a search policy, catches out-of-memory, measures, cleans up.

It knows nothing of models: a trial is a callable ``run_trial(batch_size)``. The plain-PyTorch driver
(:func:`traenslenzor.tuner.batch.finder.find_batch_size`) and the Lightning adapter build their trials and call
:func:`run_search` with one :class:`BatchSearchSettings`, validated once where the user's call came in;
:func:`search_batch_size` is that boundary for a trial callable of your own.

The policy (which size next, see :mod:`traenslenzor.tuner.batch.search`) is apart from the execution here: catching only
:func:`is_oom_error` errors, cleaning up after one (the injectable ``clean_up``, by default
:func:`~traenslenzor.tuner.oom.free_memory`), measuring each trial's peak memory (the injectable ``meter``),
holding trials to the memory budget, and never returning a size that was not run successfully (binsearch stopped
by the trial cap: see :class:`~traenslenzor.tuner.batch.search.BinarySearch`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from traenslenzor.tuner.batch.memory import (
    PeakMemoryMeter,
    address_space_limited,
    as_device,
    check_max_memory,
    resolve_budget,
)
from traenslenzor.tuner.batch.result import BatchSizeResult, BatchSizeTrial
from traenslenzor.tuner.batch.search import DEFAULT_MARGIN, SEARCH_POLICIES, BatchSizeMode, SearchPolicy
from traenslenzor.tuner.oom import free_memory, is_oom_error, pin_mmap_threshold, release_heap

log = logging.getLogger(__name__)

# Either name sets the size of oneDNN's primitive cache (DNNL_ is the older spelling).
ONEDNN_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")

REMEDIES = (
    'reduce the image resolution (or sequence length), enable mixed precision (precision="16-mixed"), or train '
    "with a small batch and gradient accumulation (accumulate_grad_batches)"
)


class BatchSizeNotFoundError(RuntimeError):
    """No batch size fitted: even the smallest size tried ran out of memory (or over the budget)."""


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")


@dataclass(frozen=True)
class BatchSearchSettings:
    """The settings of one batch-size search: built once where the call comes in, validated there, passed down
    unchanged to the runner and the policy. The defaults here are the core's (:func:`search_batch_size`); the
    entry points that differ (``find_batch_size``'s ``mode``, the Lightning ``Tuner``'s ``margin``) say so in
    their signatures.

    Attributes:
        mode: the search policy, a key of ``SEARCH_POLICIES``.
        init_val: the first size tried.
        max_trials: most trials that fit (failed trials are not counted, as in Lightning's binsearch).
        max_val: the largest size proposed.
        margin: ``binsearch``: the final size is reduced by this fraction (and verified); ``auto``: the search
            stops once the largest fit is within this fraction of the smallest failure.
        steps_per_trial: training steps per trial (the first is warm-up; samples/s is timed over the rest).
        max_memory: budget for a trial's peak memory: bytes, or a fraction in (0, 1] of the device's total; None:
            what the process can reach (see :mod:`memory`).

    Raises:
        ValueError: a setting out of range, naming it and what is allowed (at construction).
    """

    mode: BatchSizeMode = "power"
    init_val: int = 2
    max_trials: int = 25
    max_val: int = 8192
    margin: float = DEFAULT_MARGIN
    steps_per_trial: int = 3
    max_memory: int | float | None = None

    def __post_init__(self) -> None:
        if self.mode not in SEARCH_POLICIES:
            raise ValueError(f"Unknown batch-size search mode {self.mode!r}; choose one of {sorted(SEARCH_POLICIES)}.")
        for name in ("init_val", "max_trials", "steps_per_trial"):
            _check_count(name, getattr(self, name))
        max_val = self.max_val
        if isinstance(max_val, bool) or not isinstance(max_val, int) or max_val < self.init_val:
            raise ValueError(f"max_val must be an integer >= init_val={self.init_val}, got {max_val!r}.")
        margin = self.margin
        if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must lie in [0, 1) (0.02 keeps a 2 % safety buffer), got {margin!r}.")
        check_max_memory(self.max_memory)


DEFAULTS = BatchSearchSettings()


def _check_dataset_len(dataset_len: int | None) -> None:
    if dataset_len is not None and dataset_len < 1:
        raise ValueError(f"The dataset is empty (dataset_len={dataset_len}); there is no batch to try.")


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
    clean_up: Callable[[], None],
) -> BatchSizeTrial:
    """One trial; out-of-memory errors become a failed trial (then ``clean_up``), every other error propagates."""
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
        clean_up()
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
    clean_up: Callable[[], None],
) -> Callable[[int, int | None], BatchSizeTrial]:
    """``run(size, budget)``: one trial, then ``between_trials`` however it ended."""

    def run(size: int, budget: int | None) -> BatchSizeTrial:
        try:
            return _run_trial(run_trial, size, steps, meter, budget, device, clean_up)
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
    mode: BatchSizeMode = DEFAULTS.mode,
    init_val: int = DEFAULTS.init_val,
    max_trials: int = DEFAULTS.max_trials,
    max_val: int = DEFAULTS.max_val,
    margin: float = DEFAULTS.margin,
    steps_per_trial: int = DEFAULTS.steps_per_trial,
    max_memory: int | float | None = DEFAULTS.max_memory,
    dataset_len: int | None = None,
    device: torch.device | str | None = None,
    between_trials: Callable[[], None] | None = None,
    progress_bar: bool = True,
    meter: PeakMemoryMeter | None = None,
    clean_up: Callable[[], None] = free_memory,
) -> BatchSizeResult:
    """Search for a batch size by running trials, and return every trial and the chosen size.

    The boundary for a trial callable of your own: the settings (``mode`` ... ``max_memory``, see
    :class:`BatchSearchSettings`) are validated here, once, and :func:`run_search` runs the search.

    Args:
        run_trial: ``run_trial(b)`` runs ``steps_per_trial`` full training steps (forward, backward, optimizer
            step) at batch size ``b``. It returns the seconds spent in the timed steps -- steps 2 to
            ``steps_per_trial`` (the first is warm-up: optimizer state, kernel selection), or the single step when
            ``steps_per_trial == 1`` -- or None, and then the whole call is timed as ``steps_per_trial`` steps.
            It signals "does not fit" by letting the out-of-memory error propagate.
        mode, init_val, max_trials, max_val, margin, steps_per_trial, max_memory: see :class:`BatchSearchSettings`.
        dataset_len, device, between_trials, progress_bar, meter, clean_up: see :func:`run_search`.

    Returns:
        A :class:`BatchSizeResult` whose ``batch_size`` ran successfully in this search.

    Raises:
        ValueError: bad arguments (before any trial).
        BatchSizeNotFoundError: no size fitted (with remedies).
    """
    settings = BatchSearchSettings(mode, init_val, max_trials, max_val, margin, steps_per_trial, max_memory)
    return run_search(
        run_trial,
        settings,
        dataset_len=dataset_len,
        device=device,
        between_trials=between_trials,
        progress_bar=progress_bar,
        meter=meter,
        clean_up=clean_up,
    )


def run_search(
    run_trial: Callable[[int], float | None],
    settings: BatchSearchSettings,
    *,
    dataset_len: int | None = None,
    device: torch.device | str | None = None,
    between_trials: Callable[[], None] | None = None,
    progress_bar: bool = True,
    meter: PeakMemoryMeter | None = None,
    clean_up: Callable[[], None] = free_memory,
) -> BatchSizeResult:
    """Run the search ``settings`` describe (validated when they were built) with trials of ``run_trial``.

    Args:
        run_trial: as for :func:`search_batch_size`.
        settings: the search's settings, read as they are.
        dataset_len: length of the dataset; sizes are capped to it.
        device: where the trials run (for memory measurement); default the current CUDA device, else the CPU.
        between_trials: called after every trial, also a failed one, before the next (restore state there).
        progress_bar: show a tqdm bar over the trials.
        meter: measures a trial's peak memory (``start()``, ``stop() -> bytes | None``); default a
            :class:`PeakMemoryMeter` for ``device``. Pass your own for devices without allocator statistics or a
            simulated device.
        clean_up: frees memory after an out-of-memory trial and at the end of the search; default
            :func:`~traenslenzor.tuner.oom.free_memory` (garbage collection, device caches, the C heap). A
            simulated device that holds no real memory can pass a no-op.

    Raises:
        ValueError: an empty dataset (before any trial).
        BatchSizeNotFoundError: no size fitted (with remedies).
    """
    _check_dataset_len(dataset_len)
    device = as_device(device)
    mode, init_val, max_trials = settings.mode, settings.init_val, settings.max_trials
    cap = settings.max_val if dataset_len is None else min(settings.max_val, dataset_len)
    if cap < init_val:
        log.info("init_val=%d exceeds the dataset length %d; starting at %d.", init_val, dataset_len, cap)
    budget = resolve_budget(settings.max_memory, device)
    policy = SEARCH_POLICIES[mode](
        init_val=min(init_val, cap),
        max_val=cap,
        margin=settings.margin,
        budget=budget,
        adaptive_peaks=device.type == "cuda",
    )
    meter = meter if meter is not None else PeakMemoryMeter(device)
    if device.type == "cpu" and address_space_limited():
        _prepare_for_address_space_limit()
    run = _trial_runner(run_trial, settings.steps_per_trial, meter, between_trials, device, clean_up)
    budget_now = (lambda: resolve_budget(None, device)) if settings.max_memory is None else None
    # No tqdm object at all without a bar: its monitor thread would reserve a 64 MiB malloc arena.
    bar = tqdm(total=max_trials, desc=f"batch size ({mode})", leave=False) if progress_bar else None
    try:
        _drive(policy, run, max_trials, bar, budget_now)
    finally:
        if bar is not None:
            bar.close()
        # Hand back the blocks the trials cached: what runs next (an LR search, training) at the chosen size then
        # starts from an empty allocator cache instead of one fragmented by the trials' other sizes.
        clean_up()
    best = policy.best
    if best is None:
        raise _not_found(policy, max_trials)
    record = {**asdict(settings), "dataset_len": dataset_len}
    del record["mode"]  # a field of the result itself
    return BatchSizeResult(best, mode, tuple(policy.trials), policy.reason, policy.budget, str(device), record)


__all__ = [
    "DEFAULTS",
    "REMEDIES",
    "BatchSearchSettings",
    "BatchSizeNotFoundError",
    "run_search",
    "search_batch_size",
]
