"""Suggestion rules: turn an LR range-test curve into one learning rate.

Every rule is a pure function ``rule(lrs, losses) -> index | None`` of two equally long 1-D arrays (learning
rates in sweep order, and the smoothed loss recorded at each) that returns an index into the arrays it was given,
or None when the curve holds no usable answer. Rules live in the ``SUGGESTIONS`` registry; ``suggest`` does the
shared book-keeping (validation, trimming ``skip_begin``/``skip_end``, dropping non-finite points, mapping the index
back to the untrimmed curve) so that each rule only holds its own idea.

The range test itself is Smith, "Cyclical Learning Rates for Training Neural Networks" (2015/2017); ``valley``,
``slide`` and ``minimum`` re-implement the rules fastai ships (``fastai.callback.schedule``), ``steepest`` is the
rule of torch-lr-finder and (against raw LR) Lightning. Why the default is what it is: ``docs/suggestion.md``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from traenslenzor.tuner.lr.curve import final_valley, rise_onset, smoothed_noise
from traenslenzor.tuner.lr.settings import DEFAULT_SWEEP
from traenslenzor.tuner.lr.wall import START_POINTS, read_wall

log = logging.getLogger(__name__)

Rule = Callable[[np.ndarray, np.ndarray], "int | None"]

# How far below the onset of the final rise the default rule ``stable`` goes, in decades (10**1.2 ~ 16x lower).
# Chosen on half of the benchmark's tasks (1.1..1.3 did equally well there), confirmed on the other half and on
# hold-out tasks; see docs/suggestion.md.
STABLE_DECADES_BELOW = 1.2
# A point counts as "not yet rising" while its smoothed loss is within this many noise standard deviations of the
# lowest loss before it. One sigma: the lowest point of a noisy flat stretch is itself about one sigma low.
ONSET_NOISE_SIGMAS = 1.0
# Points ``suggest`` leaves out by default: the first (a bias-corrected EMA has averaged few batches there, so the
# curve is flat and noisy) and the last (often the blow-up that stopped the test).
SKIP_BEGIN = 10
SKIP_END = 1


def _rule(min_points: int) -> Callable[[Callable[..., int | None]], Rule]:
    """Marks a function as a suggestion rule that needs ``min_points`` points and makes it safe on any input.

    The wrapped rule sees only finite points with positive LRs, as float arrays; its index is mapped back to the
    arrays the caller gave. Fewer usable points than ``min_points`` gives None without calling the rule. Keyword
    options (a rule's knobs, e.g. ``slide``'s window) pass through. ``beta`` (the curve's EMA factor, which
    ``suggest`` always knows) reaches only the rules whose core takes it.
    """

    def decorate(core: Callable[..., int | None]) -> Rule:
        takes_beta = "beta" in inspect.signature(core).parameters

        @functools.wraps(core)
        def rule(lrs: np.ndarray, losses: np.ndarray, **options: float) -> int | None:
            if not takes_beta:
                options.pop("beta", None)
            lrs = np.asarray(lrs, dtype=float).reshape(-1)
            losses = np.asarray(losses, dtype=float).reshape(-1)
            if lrs.shape != losses.shape:
                return None
            keep = np.flatnonzero(np.isfinite(lrs) & np.isfinite(losses) & (lrs > 0))
            if keep.size < min_points:
                return None
            index = core(lrs[keep], losses[keep], **options)
            return None if index is None else int(keep[index])

        rule.min_points = min_points  # type: ignore[attr-defined]
        return rule

    return decorate


def _log_gradient(lrs: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """d loss / d log10(lr), with points of repeated LR (no spacing) given gradient 0 rather than inf/NaN."""
    x = np.log10(lrs)
    if np.unique(x).size < x.size or x.size < 2:
        return np.zeros_like(losses)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = np.gradient(losses, x)
    return np.where(np.isfinite(grad), grad, 0.0)


@_rule(min_points=2)
def steepest(lrs: np.ndarray, losses: np.ndarray) -> int | None:
    """The point where the loss falls fastest per decade of LR (torch-lr-finder's rule; Lightning's against raw LR).

    Returns None when the loss never falls.
    """
    grad = _log_gradient(lrs, losses)
    index = int(np.argmin(grad))
    return index if grad[index] < 0 else None


@_rule(min_points=1)
def minimum(lrs: np.ndarray, losses: np.ndarray) -> int | None:
    """One decade below the LR of the lowest loss (fastai's ``minimum``), as the point nearest that LR in log scale."""
    target = np.log10(lrs[int(np.argmin(losses))]) - 1.0
    return int(np.argmin(np.abs(np.log10(lrs) - target)))


@_rule(min_points=2)
def valley(lrs: np.ndarray, losses: np.ndarray) -> int | None:
    """fastai's ``valley``: inside the longest strictly decreasing run of losses, a point about half-way down.

    The run is the longest decreasing subsequence ending anywhere (points may be skipped); the answer sits at
    ``start + span/3 + span/6`` of its index span, i.e. past the flat start but before the bottom, where the loss
    still falls.
    """
    n = losses.size
    run = np.ones(n, dtype=int)  # run[i]: longest decreasing subsequence that ends at i
    for i in range(1, n):
        longer = run[:i][losses[:i] > losses[i]]
        if longer.size:
            run[i] = longer.max() + 1
    end = int(np.argmax(run))  # first i with the longest run
    if run[end] < 2:
        return None
    start = end - int(run[end])
    third = (end - start) / 3
    return max(0, start + int(third) + int(third / 2))


@_rule(min_points=3)
def slide(lrs: np.ndarray, losses: np.ndarray, *, window: int = 15, threshold: float = 0.005) -> int | None:
    """fastai's ``slide``: from the end, slide a window left until the gradient at its two ends agrees.

    Gradients are per point (as fastai, against index). Starting with the window's right end at the last point,
    it moves left while the gradients at its two ends differ by more than ``threshold``; the answer is the left
    end of the last window that still differed, i.e. the start of the flat-enough stretch before divergence.
    """
    grad = np.gradient(losses)
    n = losses.size
    window = min(window, n - 1)
    right, left = n - 1, n - 1 - window
    answer = left
    while left >= 0 and abs(grad[right] - grad[left]) > threshold:
        answer = left
        right -= 1
        left -= 1
    return answer


@_rule(min_points=3)
def stable(
    lrs: np.ndarray,
    losses: np.ndarray,
    *,
    decades_below: float = STABLE_DECADES_BELOW,
    beta: float = DEFAULT_SWEEP.beta,
) -> int | None:
    """``decades_below`` decades below the onset of the final rise of the curve (the default rule).

    Where the smoothed loss stops falling and starts to rise marks where the sweep's LR became too large (the
    edge of stability, seen a few steps late through the EMA). A constant LR trained for a whole budget must stay
    clearly inside the stable region; on the tasks of ``benchmarks/lr_quality.py`` the grid-best constant LR sat
    a roughly fixed distance below that onset, and ``decades_below`` is that distance. The onset is searched in
    the final valley only (``curve.final_valley``: early dips of the plateau are ignored) with a tolerance of
    ``ONSET_NOISE_SIGMAS`` times the curve's noise (``curve.smoothed_noise``), so a flat, noisy stretch before the
    blow-up does not decide the answer; ``beta`` is the EMA factor the curve was smoothed with. None when the curve
    has no descent (flat, or lowest at its first point).
    """
    valley = final_valley(losses)
    if valley is None or valley[1] == 0:
        return None
    onset = rise_onset(losses, valley[0], ONSET_NOISE_SIGMAS * smoothed_noise(losses, beta))
    x = np.log10(lrs)
    return int(np.argmin(np.abs(x - (x[onset] - decades_below))))


@_rule(min_points=START_POINTS + 3)
def wall(lrs: np.ndarray, losses: np.ndarray) -> int | None:
    """The wall reading (``traenslenzor.tuner.lr.wall``): below the middle of the descent and the wall.

    Meant for the loss on the fixed probe batches (``LRFinderResult.probe_losses``, which
    ``LRFinderResult.suggestion`` gives it); on a curve without them it reads the raw training loss. Returns the
    curve point nearest the reading; ``suggest`` reports the reading's own LR.
    """
    reading = read_wall(lrs, losses)
    if reading is None:
        return None
    return int(np.argmin(np.abs(np.log10(lrs) - np.log10(reading.lr))))


def log_mean(a: float | None, b: float | None) -> float | None:
    """The geometric mean of two LRs (the middle in log-LR); the one given when the other is None."""
    if a is None or b is None:
        return a if b is None else b
    return float(10 ** ((math.log10(a) + math.log10(b)) / 2))


def _wall_lr(lrs: np.ndarray, losses: np.ndarray, beta: float = DEFAULT_SWEEP.beta) -> float | None:
    reading = read_wall(lrs, losses)
    return None if reading is None else reading.lr


def _blend_lr(lrs: np.ndarray, losses: np.ndarray, beta: float = DEFAULT_SWEEP.beta) -> float | None:
    index = stable(lrs, losses, beta=beta)
    return log_mean(_wall_lr(lrs, losses), None if index is None else float(lrs[index]))


@_rule(min_points=START_POINTS + 3)
def blend(lrs: np.ndarray, losses: np.ndarray, *, beta: float = DEFAULT_SWEEP.beta) -> int | None:
    """The middle (in log-LR) of the ``wall`` and ``stable`` readings (the default).

    Two readings of different features of the curve -- where the loss climbs back (``wall``) and where its final
    rise sets in (``stable``) -- each right on some task families and a fraction of a decade off on others; their
    middle halves either's error where they disagree and moves less from run to run than either (measured in
    ``docs/suggestion.md``; neural_prophet's finder likewise takes the log-mean of two readings). On a range-test
    result, ``wall`` reads the fixed-batch curve and ``stable`` the smoothed training loss
    (``LRFinderResult.suggestion_outcome``); given one curve here, both read it. Either alone where the other reads
    nothing.
    """
    lr = _blend_lr(lrs, losses, beta)
    return None if lr is None else int(np.argmin(np.abs(np.log10(lrs) - math.log10(lr))))


SUGGESTIONS: dict[str, Rule] = {
    "steepest": steepest,
    "valley": valley,
    "minimum": minimum,
    "slide": slide,
    "stable": stable,
    "wall": wall,
    "blend": blend,
}

# Chosen on the benchmarks' recorded curves (benchmarks/lr_readings.py); the measurements are in
# docs/suggestion.md. A result without the fixed-batch curve (a file written before it, a sweep run with
# probe_batches=0) falls back to FALLBACK_SUGGESTION.
DEFAULT_SUGGESTION = "blend"
FALLBACK_SUGGESTION = "stable"
# The version of the default's reading: raise it whenever DEFAULT_SUGGESTION names another rule or that rule (or its
# fallback) reads a curve differently. A value recorded under another version (the app's tuning record) is searched
# again rather than reused. 1: wall, probe after every step; 2: blend, probe after every 2nd step.
DEFAULT_RULE_VERSION = 2
# Rules that read the loss on the fixed probe batches when the result has it (else the raw training loss); the
# others read the smoothed training loss (``blend`` reads both: its ``wall`` part the fixed-batch curve).
READS_PROBE = frozenset({"wall", "blend"})
# Rules whose answer is an LR of their own, between curve points (``suggest`` reports it instead of the point's).
_EXACT = {"wall": _wall_lr, "blend": _blend_lr}


@dataclass(frozen=True)
class SuggestionOutcome:
    """What ``suggest`` found: the index into the full curve and its LR, or None and the reason why."""

    index: int | None
    lr: float | None
    method: str
    reason: str | None = None


def suggest(
    lrs: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    *,
    method: str | None = None,
    skip_begin: int = SKIP_BEGIN,
    skip_end: int = SKIP_END,
    beta: float = DEFAULT_SWEEP.beta,
) -> SuggestionOutcome:
    """Applies the rule ``method`` (default ``DEFAULT_SUGGESTION``) to a range-test curve.

    Args:
        lrs: learning rates in sweep order.
        losses: smoothed losses recorded at those LRs.
        method: a key of ``SUGGESTIONS``; None picks ``DEFAULT_SUGGESTION``.
        skip_begin: points to ignore at the start (the curve is still flat and noisy there).
        skip_end: points to ignore at the end (often the divergence); 0 keeps every point.
        beta: the EMA factor ``losses`` were smoothed with (``LRFinderResult.beta``); rules that estimate the
            curve's noise read it.

    Returns:
        The outcome, with ``index`` into the untrimmed arrays, or ``index=None`` and a ``reason`` (logged at DEBUG).

    Raises:
        ValueError: unknown method, negative skips, or arrays of different length / not 1-D.
    """
    name = DEFAULT_SUGGESTION if method is None else method
    rule = SUGGESTIONS.get(name)
    if rule is None:
        raise ValueError(f"unknown suggestion method {name!r}; use one of {sorted(SUGGESTIONS)}")
    lr_arr = np.asarray(lrs, dtype=float)
    loss_arr = np.asarray(losses, dtype=float)
    if lr_arr.ndim != 1 or lr_arr.shape != loss_arr.shape:
        raise ValueError(f"lrs and losses must be 1-D and equally long, got shapes {lr_arr.shape} and {loss_arr.shape}")
    if skip_begin < 0 or skip_end < 0:
        raise ValueError(f"skip_begin and skip_end must be >= 0, got {skip_begin} and {skip_end}")

    stop = lr_arr.size - skip_end
    kept = np.arange(skip_begin, max(skip_begin, stop))
    kept = kept[np.isfinite(lr_arr[kept]) & np.isfinite(loss_arr[kept]) & (lr_arr[kept] > 0)]
    needed = getattr(rule, "min_points", 2)
    if kept.size < needed:
        return _no_suggestion(
            name,
            f"only {kept.size} finite point(s) remain after skipping {skip_begin} at the start and {skip_end} "
            f"at the end of {lr_arr.size}; rule {name!r} needs {needed}. Run more steps (num_training) or "
            "lower skip_begin/skip_end.",
        )
    index = rule(lr_arr[kept], loss_arr[kept], beta=beta)
    if index is None:
        return _no_suggestion(name, f"rule {name!r} found no suggestion on this curve (e.g. the loss never decreased).")
    full = int(kept[index])
    lr = float(lr_arr[full])
    if name in _EXACT:
        exact = _EXACT[name](lr_arr[kept], loss_arr[kept], beta)
        lr = lr if exact is None else exact
    return SuggestionOutcome(index=full, lr=lr, method=name)


def _no_suggestion(method: str, reason: str) -> SuggestionOutcome:
    # DEBUG only: callers decide how loud a missing suggestion is (LRFinderResult.suggestion() warns once).
    log.debug("No learning-rate suggestion: %s", reason)
    return SuggestionOutcome(index=None, lr=None, method=method, reason=reason)
