"""The confirmation's two decisions, with plain numbers: which candidate LRs, and the successive-halving rungs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from traenslenzor.tuner import (
    DEFAULT_CONFIRM_BUDGET,
    ConfirmPlan,
    Rung,
    TrialsTooShort,
    candidate_lrs,
    curve_wall,
    decide,
    finder_band,
    finder_wall,
    plan_confirmation,
    rung_schedule,
    survivors,
    with_incumbent,
)


def _k(lrs: tuple[float, ...]) -> list[int]:
    """Lattice indices (lr = 10 ** (k / 4)) of ``lrs``."""
    return [round(4 * math.log10(lr)) for lr in lrs]


# --- candidates ------------------------------------------------------------------------------------------------


def test_candidates_are_the_quarter_decade_lattice_from_a_tenth_to_three_times_the_suggestion():
    # s = 1e-3: the window 1e-4 .. 3e-3 holds 1e-4, 1.8e-4, 3.2e-4, 5.6e-4, 1e-3, 1.8e-3 (3.2e-3 is above 3 s).
    assert _k(candidate_lrs(1e-3)) == [-16, -15, -14, -13, -12, -11]


def test_fewer_candidates_are_the_ones_nearest_the_window_centre_and_more_widen_it():
    # The window's geometric centre is s * sqrt(0.3) = 10**-3.26: four candidates keep -15..-12.
    assert _k(candidate_lrs(1e-3, 4)) == [-15, -14, -13, -12]
    assert _k(candidate_lrs(1e-3, 8)) == [-18, -17, -16, -15, -14, -13, -12, -11]


def test_candidates_stay_strictly_below_the_wall():
    # The curve blew up at 1.5e-3: nothing at or above it (10**-11/4 = 1.8e-3 is above), the window shifts down.
    lrs = candidate_lrs(1e-3, 6, wall=1.5e-3)
    assert max(lrs) < 1.5e-3
    assert _k(lrs) == [-17, -16, -15, -14, -13, -12]
    # A wall exactly on a lattice point excludes that point.
    assert max(candidate_lrs(1e-3, 6, wall=10**-2.75)) == pytest.approx(1e-3)


def test_a_wall_at_or_below_the_suggestion_is_noise_and_ignored():
    # A flat, noisy start climbs above its first loss long before the blow-up: that "wall" is not one.
    assert candidate_lrs(1e-3, 6, wall=1.2e-8) == candidate_lrs(1e-3, 6)
    assert candidate_lrs(1e-3, 6, wall=1e-3) == candidate_lrs(1e-3, 6)


def test_a_band_replaces_the_window():
    assert _k(candidate_lrs(1e-3, 3, band=(1e-3, 1e-2))) == [-11, -10, -9]
    assert _k(candidate_lrs(1e-3, 2, band=(1e-2, 1e-2))) == [-9, -8]  # never above the band: widened downwards


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((1e-3, 1), {}, "at least 2"),
        ((0.0,), {}, "positive"),
        ((math.nan,), {}, "positive"),
        ((1e-3,), {"band": (1e-2, 1e-3)}, "band"),
        ((1e-3,), {"wall": 0.0}, "wall"),
    ],
)
def test_bad_candidate_inputs_are_refused(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        candidate_lrs(*args, **kwargs)


def test_the_wall_is_where_the_curve_climbs_back_above_its_start():
    lrs = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert curve_wall(lrs, [2.0, 1.8, 1.0, 0.5, 2.5, 9.0]) == 1e-1
    assert curve_wall(lrs, [2.0, 1.8, 1.0, 0.5, math.nan, math.nan]) == 1e-1  # a NaN is a blow-up
    assert curve_wall(lrs, [2.0, 1.8, 1.0, 0.5, 0.6, 1.9]) is None  # never back above the start
    assert curve_wall(lrs, [2.0, 1.8, 1.0, 0.5, 0.6, 1.9], stopped_early=True) == 1.0  # stopped: its last LR
    assert curve_wall([], []) is None
    assert curve_wall(lrs[:2], [math.inf, math.inf]) == 1e-5


def test_band_and_wall_are_read_from_a_result_attribute_or_its_metadata():
    curve = {"lrs": (1e-3, 1e-2, 1e-1), "losses": (1.0, 0.5, 3.0), "stop_reason": "diverged"}
    assert finder_band(SimpleNamespace(band=(1e-3, 1e-2), **curve)) == (1e-3, 1e-2)
    assert finder_band(SimpleNamespace(metadata={"band": {"low": 1e-3, "high": 1e-2}}, **curve)) == (1e-3, 1e-2)
    assert finder_band(SimpleNamespace(metadata={}, **curve)) is None
    assert finder_band(SimpleNamespace(band=("x", 1), **curve)) is None
    assert finder_wall(SimpleNamespace(**curve)) == 1e-1


# --- rungs -----------------------------------------------------------------------------------------------------


def test_six_candidates_reduction_three_are_two_rungs_within_the_budget():
    # 6 x s0 + 2 x 3 s0 = 12 s0 <= 0.25 x 2000 = 500 -> s0 = 41.
    rungs = rung_schedule(6, 2000, 0.25, 3)
    assert rungs == (Rung(41, 6), Rung(123, 2))
    assert sum(r.cost for r in rungs) == 492 <= 500


def test_halving_continues_while_two_or_more_remain():
    # 8 -> 4 -> 2: weights 8 + 4x2 + 2x4 = 24; 0.3 x 1000 = 300 -> s0 = 12.
    assert rung_schedule(8, 1000, 0.3, 2) == (Rung(12, 8), Rung(24, 4), Rung(48, 2))
    assert rung_schedule(2, 100, 0.2, 3) == (Rung(10, 2),)  # two candidates: one rung decides


def test_a_budget_too_small_for_the_first_rung_names_the_budget_that_would_do():
    # 12 s0 <= 0.25 x 200 -> s0 = 4 (AlexNet's 4-step trials, which did not move its loss); 10 steps need 0.6.
    with pytest.raises(TrialsTooShort, match=r"gives 4-step .* confirm_budget = 0\.6 would give 10-step") as caught:
        rung_schedule(6, 200, 0.25, 3)
    assert caught.value.budget_needed == pytest.approx(0.6)
    with pytest.raises(TrialsTooShort, match="no budget up to 1") as caught:
        rung_schedule(6, 100, 0.25, 3)
    assert caught.value.budget_needed is None
    assert rung_schedule(6, 200, 0.25, 3, min_steps=4)[0].steps == 4  # the floor is a parameter


def test_continued_rungs_train_only_the_extra_steps_and_afford_longer_trials():
    # Continued: 6 x s0 + 2 x (3 s0 - s0) = 10 s0 <= 500 -> s0 = 50 (restarted: 41).
    rungs = rung_schedule(6, 2000, 0.25, 3, continued=True)
    assert rungs == (Rung(50, 6), Rung(150, 2, continued=True, previous=50))
    assert rungs[1].trained == 100
    assert sum(r.cost for r in rungs) == 500
    plan = plan_confirmation(1e-3, 2000, continued=True)
    assert plan.continued and not plan_confirmation(1e-3, 2000).continued


@pytest.mark.parametrize(("candidates", "budget", "reduction"), [(1, 0.2, 3), (6, 0.0, 3), (6, 1.5, 3), (6, 0.2, 1)])
def test_bad_rung_inputs_are_refused(candidates, budget, reduction):
    with pytest.raises(ValueError):
        rung_schedule(candidates, 1000, budget, reduction)


def test_a_plan_joins_candidates_and_rungs_and_states_its_cost():
    plan = plan_confirmation(1e-3, 3000)
    assert isinstance(plan, ConfirmPlan)
    assert len(plan.candidates) == 6 and plan.trials == 8
    assert plan.cost <= DEFAULT_CONFIRM_BUDGET * 3000
    assert plan.to_dict()["rungs"][0] == {"steps": plan.rungs[0].steps, "trials": 6, "continued": False}
    assert plan.incumbent == 1e-3 and plan.to_dict()["incumbent"] == 1e-3


def test_the_finder_lr_replaces_its_nearest_candidate():
    # s = 8.3e-3 is nearest 10**(-2) = 1e-2 of the lattice 1e-3 .. 1.8e-2: that point gives way to s itself.
    lattice_points = candidate_lrs(8.3e-3)
    assert _k(lattice_points) == [-12, -11, -10, -9, -8, -7]
    mixed = with_incumbent(lattice_points, 8.3e-3)
    assert len(mixed) == 6 and 8.3e-3 in mixed and 1e-2 not in mixed and list(mixed) == sorted(mixed)
    assert with_incumbent(lattice_points, 1e-2) == lattice_points  # already a candidate: unchanged
    assert plan_confirmation(8.3e-3, 3000).candidates == mixed


def test_survivors_are_the_lowest_losses_with_non_finite_last():
    losses = {1e-4: 0.9, 1e-3: 0.5, 1e-2: math.nan, 3e-3: 0.5, 1e-1: math.inf}
    assert survivors(losses, 2) == [1e-3, 3e-3]  # a tie goes to the smaller LR
    assert survivors(losses, 4)[-1] in (1e-2, 1e-1)
    assert survivors({1e-2: math.nan}, 2) == [1e-2]


def test_the_finder_lr_always_survives_to_the_last_rung():
    losses = {1e-4: 0.9, 1e-3: 0.5, 3e-3: 0.4, 1e-2: 0.7}
    assert survivors(losses, 2, incumbent=1e-2) == [3e-3, 1e-2]  # the best other, and the finder's LR
    assert survivors(losses, 2, incumbent=1e-3) == [3e-3, 1e-3]  # earned its place: no change
    assert survivors(losses, 2, incumbent=5e-2) == [3e-3, 1e-3]  # not a candidate: plain ranking


# --- verdict -----------------------------------------------------------------------------------------------------


def test_a_candidate_replaces_the_finder_lr_only_beyond_the_margin():
    won = decide({1e-3: 1.00, 3e-3: 0.95}, 1e-3, margin=0.01)
    assert won.decided and won.learning_rate == 3e-3 and won.improvement == pytest.approx(0.05)
    close = decide({1e-3: 1.00, 3e-3: 0.995}, 1e-3, margin=0.01)
    assert not close.decided and close.learning_rate == 1e-3
    assert close.reason.startswith("not decided") and "keeping the finder's LR 1.00e-03" in close.reason


def test_the_finder_lr_that_trains_best_is_confirmed():
    verdict = decide({1e-3: 0.8, 3e-3: 0.9}, 1e-3)
    assert verdict.decided and verdict.learning_rate == 1e-3 and verdict.improvement == 0.0
    assert decide({1e-3: 0.8, 3e-3: 0.8}, 1e-3).learning_rate == 1e-3  # a tie keeps the finder's LR


def test_trials_that_did_not_move_the_loss_decide_nothing():
    # AlexNet's 4-step trials: 2.772 at the start, every trial within 0.1 % of it; the smallest LR "won".
    losses = {1e-5: 2.7705, 5.2e-5: 2.7712, 1e-4: 2.7716}
    verdict = decide(losses, 5.2e-5, margin=0.01, start_loss=2.772)
    assert not verdict.decided and verdict.learning_rate == 5.2e-5
    assert "too short" in verdict.reason
    assert decide(losses, 5.2e-5, margin=0.0).learning_rate == 1e-5  # no margin, no start check: the noise wins
    assert not decide(losses, 5.2e-5, margin=0.01).decided  # the margin alone catches this one too


def test_diverged_trials():
    assert decide({1e-3: math.inf, 3e-3: math.inf}, 1e-3).reason.startswith("not decided: every trial diverged")
    fled = decide({1e-3: math.inf, 3e-4: 0.7}, 1e-3)
    assert fled.decided and fled.learning_rate == 3e-4


def test_bad_verdict_inputs_are_refused():
    with pytest.raises(ValueError, match="incumbent"):
        decide({1e-3: 1.0, 3e-3: 0.9}, 5e-3)
    with pytest.raises(ValueError, match="margin"):
        decide({1e-3: 1.0, 3e-3: 0.9}, 1e-3, margin=1.5)
