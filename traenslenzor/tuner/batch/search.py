"""Batch-size search policies: which size to try next, given the outcomes so far.

A policy is a small pure object. The runner (:func:`traenslenzor.tuner.batch.runner.run_search`) asks it
for a size with :meth:`SearchPolicy.propose`, runs the trial, and feeds the outcome back with
:meth:`SearchPolicy.observe`; ``propose`` returning None means the search is over and :attr:`SearchPolicy.best`
holds the answer. Policies never touch a model, so their size sequences are tested with plain lists of outcomes.

Every policy honours the same rules: the first trial is ``init_val`` (capped at ``max_val``), no size above
``max_val`` is proposed, and ``best`` is always a size that was run and fitted -- or, for ``binsearch`` stopped
by the trial cap, the margin cut of such a size (smaller than one that fitted, so safe).

Policies:
    ``power``: double from ``init_val`` until a size fails or ``max_val`` is reached (as Lightning's ``power``).
    ``binsearch``: ``power``, then bisection between the last fit and the first failure, then the ``margin``
        safety reduction, itself verified by a trial (as Lightning's ``binsearch``, which returns it untested).
        If the trial cap ends the search first, Lightning's cut of the largest fit: below a size that fitted.
    ``auto``: fit an affine memory model ``peak(b) = a + c*b`` to the peaks measured at small sizes, jump to the
        largest size the model puts under the memory budget, verify, and close the gap to ``min(margin, 2 %)``
        (galloping down from a failure, then bisection). Falls back to ``binsearch`` growth while no budget or
        no reliable memory slope is known.
    ``throughput``: double while samples/s keeps improving, then choose the smallest size whose throughput is
        within 5 % of the best measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from traenslenzor.tuner.batch.result import BatchSizeTrial

THROUGHPUT_TOLERANCE = 0.05  # "within 5 % of the best throughput"

# binsearch's safety cut. Lightning cuts 5 % because it returns the cut size without running it; ours runs it, so
# the cut only has to absorb what a few trial steps cannot show (fragmentation over a long run), and 5 % would
# by construction land under 95 % of the true maximum whenever the bisection ends a fraction of a percent low
# (as it does where memory wobbles per shape). The Lightning-facing Tuner keeps Lightning's 0.05.
DEFAULT_MARGIN = 0.02


def margin_target(size: int, margin: float) -> int:
    """``size`` reduced by at most ``margin`` (rounded up, at least 1): the binsearch safety buffer.

    Lightning rounds down (``int(999 * 0.95) = 949``, a 5.005 % cut); rounding up keeps the cut within ``margin``.
    """
    return max(1, math.ceil(size * (1.0 - margin) - 1e-9))


def within_tolerance(low: int, high: int, margin: float) -> bool:
    """Whether the bracket (``low`` fits, ``high`` fails) is narrow enough: ``high - low <= max(1, margin*high)``."""
    return high - low <= max(1, math.floor(margin * high))


def fit_affine(sizes: Sequence[float], peaks: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``(intercept, slope)`` of ``peaks`` against ``sizes`` (at least two distinct sizes)."""
    n = len(sizes)
    if n < 2 or len(set(sizes)) < 2:
        raise ValueError("fit_affine needs at least two distinct sizes")
    mean_b = sum(sizes) / n
    mean_p = sum(peaks) / n
    var = sum((b - mean_b) ** 2 for b in sizes)
    slope = sum((b - mean_b) * (p - mean_p) for b, p in zip(sizes, peaks, strict=True)) / var
    return mean_p - slope * mean_b, slope


def predict_max_size(intercept: float, slope: float, budget: float) -> int | None:
    """The largest ``b`` with ``intercept + slope*b <= budget`` (None if the slope is not positive)."""
    if slope <= 0:
        return None
    return math.floor((budget - intercept) / slope)


class SearchPolicy:
    """Shared bookkeeping: trials seen, largest fit, smallest failure above it, the finishing reason."""

    name = "base"

    def __init__(
        self,
        *,
        init_val: int = 2,
        max_val: int = 8192,
        margin: float = DEFAULT_MARGIN,
        budget: int | None = None,
        adaptive_peaks: bool = False,
    ):
        """``adaptive_peaks``: the device's peak grows into the memory it finds free (CUDA: cuDNN takes large
        workspaces when it can, and the caching allocator frees its cache and retries before it raises), so a
        trial whose peak reached the budget has not shown that a larger one fails. Only ``auto`` reads it."""
        self.init_val = min(init_val, max_val)
        self.max_val = max_val
        self.margin = margin
        self.budget = budget
        self.adaptive_peaks = adaptive_peaks
        self.trials: list[BatchSizeTrial] = []
        self.reason = "not started"
        self.capped = False  # the runner's trial cap (max_trials) ended the search, not the policy

    def stop_at_cap(self, reason: str) -> None:
        """The runner stops the search at its trial cap; :attr:`best` may read that (``binsearch`` does)."""
        self.capped = True
        self.reason = reason

    def observe(self, trial: BatchSizeTrial) -> None:
        self.trials.append(trial)

    def propose(self) -> int | None:
        """The next size to try, or None when the search is over (then :attr:`reason` says why).

        Every policy starts at ``init_val`` and halves down while nothing fits; what follows the first fit is the
        policy's own :meth:`_propose_after_fit`.
        """
        if not self.trials:
            return self.init_val
        low = self.low
        if low == 0:
            return self._descend()
        return self._propose_after_fit(low, self.high)

    def _propose_after_fit(self, low: int, high: int | None) -> int | None:
        """The next size once ``low`` fitted (``high``: smallest failure above it, if any)."""
        raise NotImplementedError

    @property
    def best(self) -> int | None:
        """The answer so far: the largest size that fitted (None if none did)."""
        return self.low or None

    # -- helpers ---------------------------------------------------------------------------------------------
    @property
    def low(self) -> int:
        """Largest size that fitted, 0 if none."""
        return max((t.batch_size for t in self.trials if t.fits), default=0)

    @property
    def high(self) -> int | None:
        """Smallest failed size above :attr:`low`, None if none failed there."""
        low = self.low
        return min((t.batch_size for t in self.trials if not t.fits and t.batch_size > low), default=None)

    def tried(self, size: int) -> bool:
        return any(t.batch_size == size for t in self.trials)

    def _finish(self, reason: str) -> None:
        self.reason = reason

    def _descend(self) -> int | None:
        """Nothing fitted yet: halve the smallest failed size (None once size 1 failed)."""
        smallest = min(t.batch_size for t in self.trials)
        if smallest <= 1:
            self._finish("batch size 1 does not fit")
            return None
        return smallest // 2

    def _grow(self, factor: int = 2) -> int | None:
        """Everything fitted so far: multiply the largest fit, capped at ``max_val`` (None once it is reached)."""
        low = self.low
        if low >= self.max_val:
            self._finish(f"reached max_val={self.max_val}")
            return None
        return min(factor * low, self.max_val)


class PowerSearch(SearchPolicy):
    """Double until a size fails or ``max_val`` is reached; the answer is the last size that fitted."""

    name = "power"

    def _propose_after_fit(self, low: int, high: int | None) -> int | None:
        if high is not None:
            self._finish(f"batch size {high} does not fit")
            return None
        return self._grow()


class BinarySearch(SearchPolicy):
    """Double until a failure, bisect between the last fit and the first failure, then verify the margin cut."""

    name = "binsearch"
    max_margin_trials = 3  # margin trials in a row before settling for the largest fit below

    def _propose_after_fit(self, low: int, high: int | None) -> int | None:
        if high is None:
            size = self._grow()
            if size is not None:
                return size
        elif high - low > 1:
            return (low + high) // 2
        return self._propose_margin(low)

    def _propose_margin(self, low: int) -> int | None:
        """Verify the margin-reduced size; if it fails (fragmentation), walk down by ``margin`` until one fits."""
        target = margin_target(low, self.margin)
        fit_below = max((t.batch_size for t in self.trials if t.fits and t.batch_size <= target), default=0)
        walked = 0
        while target > fit_below and self.tried(target):
            target, walked = (margin_target(target, self.margin) if target > 1 else 0), walked + 1
        if target > fit_below and target < low and walked < self.max_margin_trials:
            return target
        if high := self.high:
            self._finish(f"largest fit {low} (batch size {high} does not fit); margin {self.margin:.0%} applied")
        else:
            self._finish(f"reached max_val={self.max_val}; margin {self.margin:.0%} applied")
        return None

    @property
    def best(self) -> int | None:
        """The margin-reduced size once verified; before that (or if it failed) the largest fit below it.

        When the trial cap ended the search before the margin trial passed: Lightning's cut of the largest fit,
        ``int(low * (1 - margin))`` (Lightning's figure). It did not run, but it lies below a size that ran and
        fitted, which is safe while memory grew with the batch size in every trial -- so only if no size below the
        largest fit failed (a failure there, e.g. a margin trial hit by fragmentation, disproves that, and the
        largest fit below the cut is returned instead, as without the cap).
        """
        low = self.low
        if low == 0:
            return None
        target = margin_target(low, self.margin)
        fits_below = [t.batch_size for t in self.trials if t.fits and t.batch_size <= target]
        margin_passed = target < low and any(t.fits and t.batch_size == target for t in self.trials)
        if self.capped and self.margin > 0 and not margin_passed:
            monotone = not any(not t.fits and t.batch_size < low for t in self.trials)
            if monotone:
                return max(1, int(low * (1.0 - self.margin)))
        return max(fits_below) if fits_below else low


class AutoSearch(SearchPolicy):
    """Model peak memory as affine in the batch size, jump to the predicted limit, verify, refine the bracket.

    Phases, all driven by the outcomes so far:

    1. *Probe*: multiply by 4 from ``init_val`` until two fitting sizes, the larger at least twice the smaller,
       differ in measured peak by more than the measurement noise (``min_rel_delta`` of the peak).
    2. *Jump*: propose the largest size the model ``peak(b) = a + c*b`` (through the largest fit and the largest
       one at most half its size) puts
       under the budget, less half the tolerance (an overshoot costs more than a size 1 % short). A fit there
       refits the model with a far point and may propose once more.
    3. *Refine*: while the bracket (largest fit ``low``, smallest failure ``high``) is wider than the tolerance
       (``min(margin, 2 %)`` of ``high``): if the failure measured a peak (over budget), interpolate the budget
       crossing (Illinois regula falsi); after an out-of-memory failure, gallop down from it in steps of the
       tolerance, doubling after each further failure, while that stays above the bracket's middle; else bisect.

    Without a budget or memory readings it degrades to ``binsearch`` growth and the same bracket refinement.
    With ``adaptive_peaks`` (CUDA) a model that puts the limit at the largest fit is not trusted: the search climbs
    from it (half the tolerance, then doubling steps) until a size fails, then refines the bracket.
    """

    name = "auto"
    min_rel_delta = 0.02  # peak differences below 2 % are treated as noise (CPU RSS jitter)
    max_tolerance = 0.02  # bracket width at which the search stops, as a fraction of the failed size

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        # The answer must land near the limit even where the limit wobbles by a percent or two between sizes
        # (kernel workspaces, block rounding), so the bracket closes to 2 % -- or tighter if margin asks for it.
        self.tolerance = min(self.margin, self.max_tolerance)
        self._last_side: str | None = None  # the bracket end the previous interpolation moved
        self._climbs = 0  # sizes proposed above a fit the model put at the limit (adaptive peaks only)

    def _propose_after_fit(self, low: int, high: int | None) -> int | None:
        if high is None:
            return self._propose_open(low)
        if within_tolerance(low, high, self.tolerance):
            self._finish(f"largest fit {low} is within {self.tolerance:.0%} of the first failure {high}")
            return None
        return self._propose_bracket(low, high)

    def _model(self) -> tuple[float, float] | None:
        """``(intercept, slope)`` through the largest fit with a peak and the largest one at most half its size.

        The far point is what makes the slope reliable: after a jump that fitted and a refit that fitted just above
        it, the two largest fits lie a percent apart, and a line through them is noise.
        """
        points = sorted((t.batch_size, t.peak_memory) for t in self.trials if t.fits and t.peak_memory is not None)
        if self.budget is None or len(points) < 2:
            return None
        b2, p2 = points[-1]
        lever = [(b, p) for b, p in points[:-1] if 2 * b <= b2]
        if not lever:
            return None
        b1, p1 = lever[-1]
        if p2 - p1 <= self.min_rel_delta * p2:
            return None
        return fit_affine([b1, b2], [p1, p2])

    def _propose_open(self, low: int) -> int | None:
        model = self._model()
        if model is None or low >= self.max_val:
            # Probes only serve to measure the slope: a x4 spread doubles the lever arm per trial.
            return self._grow(4 if self.budget is not None else 2)
        predicted = predict_max_size(*model, self.budget)
        # Aim half a tolerance below the prediction: an overshoot costs an out-of-memory trial that (on CPU) also
        # leaves the process less room for the trials after it. A fit within that half tolerance ends the search;
        # a fit further below climbs by at least half a tolerance, towards the refitted prediction.
        half = self.tolerance / 2
        if predicted is None or predicted <= low or within_tolerance(low, predicted + 1, half):
            if self.adaptive_peaks:
                return self._climb(low, half)
            self._finish(f"memory model puts the limit within {half:.0%} of the largest fit {low}")
            return None
        aim = predicted - math.floor(half * predicted)
        return min(max(aim, low + max(1, math.ceil(half * low))), self.max_val)

    def _climb(self, low: int, half: float) -> int | None:
        """Peaks that adapt to free memory cannot show the limit; a failure must. Step up from the largest fit by
        half the tolerance, doubling the step after each further fit (on an H200, ResNet-18's peak read 16.3 GiB
        against a 16 GiB cap at 395 samples; 750 fitted)."""
        if low >= self.max_val:
            self._finish(f"reached max_val={self.max_val}")
            return None
        step = max(1, math.ceil(half * low)) * 2**self._climbs
        self._climbs += 1
        return min(low + step, self.max_val)

    def _propose_bracket(self, low: int, high: int) -> int:
        last = self.trials[-1]
        fail = next(t for t in self.trials if t.batch_size == high and not t.fits)
        fit = next(t for t in self.trials if t.fits and t.batch_size == low)
        if self.budget is not None and fail.peak_memory is not None and fit.peak_memory is not None:
            return self._interpolate(fit, fail, last.fits)
        middle = (low + high) // 2
        if last is fail and self._climbs <= 1:
            # Gallop down from the failure: the model was nearly right, so the limit is most likely just below.
            # (Not after climbing past a model the peaks proved wrong: then the limit is anywhere in the bracket.)
            failures_above = sum(not t.fits for t in self.trials if t.batch_size > low)
            step = max(1, math.floor(self.tolerance * high)) * 2 ** (failures_above - 1)
            if high - step > middle:
                return high - step
        return middle

    def _interpolate(self, fit: BatchSizeTrial, fail: BatchSizeTrial, moved_low: bool) -> int:
        """Where the line between the bracket's two measured peaks crosses the budget (Illinois regula falsi).

        When the same end of the bracket moved twice in a row, the other end's distance to the budget is halved,
        which keeps a curved memory profile from pinning one end (superlinear instead of linear convergence).
        """
        below = self.budget - fit.peak_memory  # > 0
        above = fail.peak_memory - self.budget  # > 0
        side = "low" if moved_low else "high"
        if side == self._last_side:
            above, below = (above / 2, below) if moved_low else (above, below / 2)
        self._last_side = side
        size = fit.batch_size + math.floor(below * (fail.batch_size - fit.batch_size) / (below + above))
        return min(max(size, fit.batch_size + 1), fail.batch_size - 1)


class ThroughputSearch(PowerSearch):
    """Double while samples/s improves, then take the smallest size within 5 % of the best throughput.

    Growth stops at the first failure, at ``max_val``, or after ``patience`` doublings in a row that did not raise
    the best throughput by more than the tolerance (the curve has flattened; larger batches only cost memory).
    """

    name = "throughput"
    patience = 2

    def _propose_after_fit(self, low: int, high: int | None) -> int | None:
        # Power growth, which also stops once samples/s has flattened.
        if high is None and self._stalled():
            self._finish(f"throughput stopped improving by more than {THROUGHPUT_TOLERANCE:.0%}")
            return None
        return super()._propose_after_fit(low, high)

    def _stalled(self) -> bool:
        fits = [t for t in self.trials if t.fits and t.samples_per_sec is not None]
        if len(fits) <= self.patience:
            return False
        best_before = max(t.samples_per_sec for t in fits[: -self.patience])
        recent = max(t.samples_per_sec for t in fits[-self.patience :])
        return recent <= best_before * (1.0 + THROUGHPUT_TOLERANCE)

    @property
    def best(self) -> int | None:
        fits = [t for t in self.trials if t.fits]
        measured = [t for t in fits if t.samples_per_sec is not None]
        if not measured:
            return max((t.batch_size for t in fits), default=None)
        top = max(t.samples_per_sec for t in measured)
        return min(t.batch_size for t in measured if t.samples_per_sec >= (1.0 - THROUGHPUT_TOLERANCE) * top)


# The registered policies' names, as a type: a config field or argument of this type names the allowed values
# (tests/tuner/batch/test_batch_search.py holds it equal to the registry's keys).
BatchSizeMode = Literal["power", "binsearch", "auto", "throughput"]

SEARCH_POLICIES: dict[str, type[SearchPolicy]] = {
    "power": PowerSearch,
    "binsearch": BinarySearch,
    "auto": AutoSearch,
    "throughput": ThroughputSearch,
}
