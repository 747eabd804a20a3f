"""Search policies fed hand-made outcomes: exact size sequences, caps, and the contract every policy keeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from traenslenzor.tuner.batch.result import BatchSizeTrial
from traenslenzor.tuner.batch.search import (
    DEFAULT_MARGIN,
    SEARCH_POLICIES,
    fit_affine,
    margin_target,
    predict_max_size,
    within_tolerance,
)


def affine(b: int) -> int:
    return 1000 + 10 * b


def drive(
    mode: str,
    oom_from: float = float("inf"),
    budget: int | None = None,
    memory: Callable[[int], int] = affine,
    sps: Callable[[int], float] | None = None,
    limit: int = 60,
    **kwargs,
) -> tuple[list[int], int | None]:
    """Run a policy against a simulated device: OOM from ``oom_from``, ``memory(b)`` peak, ``budget``."""
    policy = SEARCH_POLICIES[mode](budget=budget, **kwargs)
    sizes = []
    while (size := policy.propose()) is not None:
        assert len(sizes) < limit, f"no termination: {sizes}"
        sizes.append(size)
        crashed = size >= oom_from
        peak = None if crashed else memory(size)
        fits = not crashed and (budget is None or peak <= budget)
        speed = sps(size) if sps and fits else None
        policy.observe(BatchSizeTrial(size, fits, peak, speed, 0.1, None if fits else "out of memory"))
    return sizes, policy.best


POWERS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def test_power_doubles_until_oom_and_returns_last_fit() -> None:
    assert drive("power", oom_from=1000) == (POWERS, 512)


def test_power_without_oom_runs_max_val_itself() -> None:
    # Lightning stops at 4096 and returns 8192 untested; we run 8192.
    assert drive("power") == ([*POWERS, 2048, 4096, 8192], 8192)


def test_power_caps_at_max_val_and_honours_init_val() -> None:
    assert drive("power", init_val=3, max_val=100) == ([3, 6, 12, 24, 48, 96, 100], 100)


def test_power_descends_when_init_val_does_not_fit() -> None:
    assert drive("power", oom_from=20, init_val=64) == ([64, 32, 16], 16)


def test_power_size_one_failing_returns_none() -> None:
    assert drive("power", oom_from=1) == ([2, 1], None)


def test_binsearch_matches_lightning_sequence_then_verifies_margin() -> None:
    # Lightning's sequence for a model that OOMs from 1000 (19 trials), then our verified margin cut:
    # ceil(999 * 0.95) = 950 (Lightning returns int(949.05) = 949 without running it).
    expected = [*POWERS, 768, 896, 960, 992, 1008, 1000, 996, 998, 999, 950]
    assert drive("binsearch", oom_from=1000, margin=0.05) == (expected, 950)


def test_binsearch_default_margin_cuts_two_percent() -> None:
    assert DEFAULT_MARGIN == 0.02
    sizes, best = drive("binsearch", oom_from=1000)
    assert sizes[-2:] == [999, 980] and best == 980  # ceil(999 * 0.98) = 980, and it was run


def test_binsearch_without_margin_returns_the_boundary() -> None:
    sizes, best = drive("binsearch", oom_from=1000, margin=0.0)
    assert sizes[-1] == 999 and best == 999


def test_binsearch_falls_back_below_a_failed_margin_trial() -> None:
    policy = SEARCH_POLICIES["binsearch"](init_val=8, margin=0.25)
    for size, fits in [(8, True), (16, False), (12, False), (10, True), (11, False)]:
        assert policy.propose() == size
        policy.observe(BatchSizeTrial(size, fits, None, None, 0.1))
    assert margin_target(10, 0.25) == 8
    assert policy.propose() is None  # 8 already ran: no margin trial needed
    assert policy.best == 8
    policy = SEARCH_POLICIES["binsearch"](init_val=10, margin=0.25)
    policy.observe(BatchSizeTrial(10, True, None, None, 0.1))
    policy.observe(BatchSizeTrial(20, False, None, None, 0.1))
    policy.observe(BatchSizeTrial(15, False, None, None, 0.1))
    policy.observe(BatchSizeTrial(12, False, None, None, 0.1))
    policy.observe(BatchSizeTrial(11, False, None, None, 0.1))
    assert policy.propose() == 8
    policy.observe(BatchSizeTrial(8, False, None, None, 0.1, "fragmented"))
    assert policy.best == 10  # the margin trial failed: so far the only size that ran is the answer
    assert policy.propose() == 6 == margin_target(8, 0.25)  # walk down by the margin
    policy.observe(BatchSizeTrial(6, True, None, None, 0.1))
    assert policy.propose() is None
    assert policy.best == 6


def test_binsearch_walks_down_by_margin_when_memory_creeps() -> None:
    # After 8 trials only sizes <= 64 fit (caches grow per shape): 92 fails, walk 88, 84 (3 margin trials), stop.
    policy = SEARCH_POLICIES["binsearch"](init_val=64, margin=0.05)
    sizes = []
    while (size := policy.propose()) is not None:
        sizes.append(size)
        fits = size <= 96 and not (size > 64 and len(sizes) > 8)
        policy.observe(BatchSizeTrial(size, fits, None, None, 0.1))
    assert sizes == [64, 128, 96, 112, 104, 100, 98, 97, 92, 88, 84]
    assert policy.best == 64


def test_binsearch_descends_then_bisects() -> None:
    assert drive("binsearch", oom_from=3, init_val=64) == ([64, 32, 16, 8, 4, 2, 3], 2)


def test_auto_jumps_to_the_model_prediction() -> None:
    # probes x4: peaks 1020, 1080 (60 > 2 % of 1080) -> slope 10, intercept 1000 -> (10990 - 1000) / 10 = 999,
    # aimed half the 2 % tolerance below: 999 - floor(0.01 * 999) = 990. It fits and the refit still says 999:
    # 1000 - 990 <= floor(0.02 * 1000), done.
    assert drive("auto", budget=affine(999)) == ([2, 8, 990], 990)


def test_auto_jumps_to_the_exact_prediction_without_tolerance() -> None:
    assert drive("auto", budget=affine(999), margin=0.0) == ([2, 8, 999], 999)


def test_auto_probes_until_the_slope_exceeds_the_noise() -> None:
    # peak 1000 + b//10: 2 -> 8 -> 32 -> 128 differ by < 2 % (noise); 128 -> 512 by 39 > 2 % of 1051:
    # slope 39/384, intercept 1012 - 128*39/384 = 999 -> floor((1100 - 999) * 384 / 39) = 994, aimed at
    # 994 - floor(0.01 * 994) = 985; largest fit 1009.
    def flat(b: int) -> int:
        return 1000 + b // 10

    sizes, best = drive("auto", budget=1100, memory=flat)
    assert sizes[:6] == [2, 8, 32, 128, 512, 985]
    assert flat(best) <= 1100 and best >= 0.98 * 1009


def test_auto_gallops_down_after_an_oom_below_the_prediction() -> None:
    # tolerance 0.02, prediction 999 aimed at 990, which crashes -> back off floor(0.02*990)=19 -> 971 crashes ->
    # back off 2*floor(0.02*971)=38 -> 933 fits; bisect (933+971)//2 = 952 crashes;
    # 952 - 933 = 19 <= floor(0.02*952): done (the limit is 939).
    expected = [2, 8, 990, 971, 933, 952]
    assert drive("auto", oom_from=940, budget=affine(999)) == (expected, 933)


def test_auto_interpolates_between_a_fit_and_a_budget_overrun() -> None:
    def quadratic(b: int) -> int:
        return 1000 + 10 * b + b * b // 100

    budget = quadratic(700)
    sizes, best = drive("auto", budget=budget, memory=quadratic, margin=0.0)
    assert best == 700  # exact boundary with margin 0
    assert len(sizes) <= 12


def test_auto_without_budget_grows_then_gallops() -> None:
    # 1024 crashes -> 1024 - floor(0.02*1024)=1004 crashes -> 1004 - 2*20 = 964 fits -> bisect 984 fits;
    # 1004 - 984 = 20 <= floor(0.02*1004): done.
    assert drive("auto", oom_from=1000) == ([*POWERS, 1004, 964, 984], 984)


def test_auto_with_adaptive_peaks_confirms_the_limit_with_one_failure() -> None:
    # As test_auto_jumps_to_the_model_prediction, then the fit at 990 is not taken as the limit: one climb of
    # half the tolerance, ceil(0.01 * 990) = 10, to 1000, which is over the budget; 1000 - 990 <= 2 %: done.
    assert drive("auto", budget=affine(999), adaptive_peaks=True) == ([2, 8, 990, 1000], 990)


def test_auto_with_adaptive_peaks_finds_the_limit_behind_a_saturated_peak() -> None:
    """CUDA-like: the peak grows into free memory (workspaces) until it reads as the whole budget, while the real
    limit (out of memory) lies twice as far. Trusting the model stops at the saturation point."""
    budget = 20_000

    def need(b: int) -> int:
        return 1000 + 10 * b  # what the step really needs; more raises out-of-memory (limit 1900)

    def adaptive(b: int) -> int:
        return min(budget, 2 * need(b))  # what the allocator reports: up to twice the need when memory is free

    _, trusted_best = drive("auto", oom_from=1901, budget=budget, memory=adaptive)
    sizes, best = drive("auto", oom_from=1901, budget=budget, memory=adaptive, adaptive_peaks=True)
    assert trusted_best < 0.5 * 1900  # the defect the flag exists for
    assert 0.98 * 1900 <= best <= 1900
    assert len(sizes) <= 20, sizes


def test_throughput_takes_smallest_size_within_five_percent() -> None:
    def speed(b: int) -> float:
        return {2: 200, 4: 400, 8: 800, 16: 1600, 32: 2900, 64: 3000, 128: 2990}.get(b, 0.0)

    # 64 and 128 do not beat 2900 by more than 5 %: stop; 0.95 * 3000 = 2850 <= 2900 -> 32.
    assert drive("throughput", sps=speed) == ([2, 4, 8, 16, 32, 64, 128], 32)


def test_throughput_stops_at_oom() -> None:
    assert drive("throughput", oom_from=20, sps=lambda b: 100.0 * b) == ([2, 4, 8, 16, 32], 16)


@pytest.mark.parametrize("mode", sorted(SEARCH_POLICIES))
@pytest.mark.parametrize(
    ("oom_from", "init_val", "max_val", "budget_at"),
    [
        (1000, 2, 8192, None),
        (1000, 2, 8192, 700),
        (7, 5, 300, None),
        (2, 2, 8192, None),
        (1, 4, 64, None),
        (float("inf"), 3, 77, None),
        (float("inf"), 1, 5000, 4321),
        (130, 128, 8192, 129),
    ],
)
def test_policy_contract(mode: str, oom_from: float, init_val: int, max_val: int, budget_at: int | None) -> None:
    budget = affine(budget_at) if budget_at else None
    sizes, best = drive(mode, oom_from, budget, init_val=init_val, max_val=max_val, sps=lambda b: 50.0 * b)
    true_max = min(oom_from - 1, budget_at or max_val, max_val)
    assert sizes[0] == init_val  # init_val is the first trial
    assert max(sizes) <= max_val
    assert len(sizes) == len(set(sizes))  # never the same size twice
    if true_max < 1:
        assert best is None
        return
    assert best in sizes and best <= true_max  # only sizes that ran and fitted
    if mode in ("binsearch", "auto"):
        assert best >= 0.95 * true_max
    if mode == "auto":
        assert best >= 0.98 * true_max


def test_pure_helpers() -> None:
    assert margin_target(999, 0.05) == 950
    assert margin_target(1000, 0.05) == 950
    assert margin_target(1, 0.5) == 1
    assert within_tolerance(950, 999, 0.05) and not within_tolerance(949, 999, 0.05)
    assert within_tolerance(5, 6, 0.0) and not within_tolerance(5, 7, 0.0)
    assert fit_affine([2, 4, 8], [1020, 1040, 1080]) == pytest.approx((1000.0, 10.0))
    assert predict_max_size(1000.0, 10.0, 10990) == 999
    assert predict_max_size(1000.0, 0.0, 10990) is None
    with pytest.raises(ValueError):
        fit_affine([4, 4], [1, 2])


def _capped(mode: str, outcomes: list[tuple[int, bool]], **kwargs):
    """A policy fed ``outcomes`` (size, fits) as its proposals, then stopped at the runner's trial cap."""
    policy = SEARCH_POLICIES[mode](**kwargs)
    for size, fits in outcomes:
        assert policy.propose() == size
        policy.observe(BatchSizeTrial(size, fits, None, None, 0.1, None if fits else "out of memory"))
    policy.stop_at_cap("stopped after max_trials")
    return policy


def test_binsearch_stopped_by_the_trial_cap_cuts_below_the_largest_fit() -> None:
    # Lightning's figures (int(8 * 0.95) = 7, int(4 * 0.9) = 3): not run, but below a size that ran and fitted.
    assert _capped("binsearch", [(4, True), (8, True)], init_val=4, margin=0.05).best == 7
    assert _capped("binsearch", [(2, True), (4, True)], margin=0.1).best == 3
    assert _capped("binsearch", [(2, True), (4, True)], margin=0.0).best == 4
    # Not stopped by the cap: the cut rounds up and is verified, as before (ceil(8 * 0.95) = 8 ran).
    policy = SEARCH_POLICIES["binsearch"](init_val=4, max_val=8, margin=0.05)
    for size in (4, 8):
        assert policy.propose() == size
        policy.observe(BatchSizeTrial(size, True, None, None, 0.1, None))
    assert policy.propose() is None and policy.best == 8


def test_binsearch_cap_cut_needs_memory_that_grew_with_the_size() -> None:
    # Bracket closed to 12 (16 failed), the cap comes before the margin trial at ceil(12 * 0.75) = 9: the cut
    # int(12 * 0.75) = 9 is below a fit and every size below 12 fitted, so it is returned.
    outcomes = [(2, True), (4, True), (8, True), (16, False), (12, True), (14, False), (13, True)]
    assert _capped("binsearch", outcomes[:5], margin=0.25).best == 9
    # The margin trial at ceil(13 * 0.75) = 10 failed although 13 fitted: memory did not grow with the size here,
    # so no untested cut; the largest fit below it (8) is returned, as without the cap.
    policy = _capped("binsearch", [*outcomes, (10, False)], margin=0.25)
    assert policy.best == 8
    # The margin trial passed before the cap: that tested size stands.
    assert _capped("binsearch", [*outcomes, (10, True)], margin=0.25).best == 10
