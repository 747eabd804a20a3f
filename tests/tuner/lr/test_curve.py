"""The curve maths the suggestion rules, the adaptive range and the diagnostics share: hand-computed curves."""

from __future__ import annotations

import numpy as np
import pytest

from traenslenzor.tuner.lr.curve import final_valley, never_turned_up, rise_onset, smoothed_noise
from traenslenzor.tuner.lr.smoothing import ema_smooth


def test_final_valley_is_last_run_below_median() -> None:
    # median of [5,5,5,5,4,3,1,.5,2,9] is 4.5: below at 4..8, lowest at 7
    assert final_valley(np.array([5, 5, 5, 5, 4, 3, 1, 0.5, 2, 9.0])) == (4, 7)
    # an early dip (index 0) is below the median too, but an earlier run: the last run wins
    assert final_valley(np.array([0.1, 5, 5, 5, 5, 4, 1, 0.5, 9, 9.0])) == (5, 7)
    assert final_valley(np.ones(5)) is None
    # a 1-point dip below the median after the rise (a blow-up that levelled off) is a wiggle: the valley before
    # it wins; median of the 12 points is 5 (below: 4..7 and 10)
    assert final_valley(np.array([5, 5, 5, 5, 4, 3, 1, 0.5, 5, 5, 4, 5.0])) == (4, 7)
    assert final_valley(np.array([5, 5, 5, 5, 4, 3, 1, 0.5, 5, 5, 4, 5.0]), min_points=1) == (10, 10)
    # no run is long enough: the last run it is
    assert final_valley(np.array([5, 1, 5, 5, 2, 5.0])) == (4, 4)


def test_smoothed_noise_from_second_differences() -> None:
    # |second differences| are all 2 -> step std 2 / (0.6745 * sqrt 2); beta=0.5 -> sqrt(2 * 0.5) = 1
    assert smoothed_noise(np.array([0, 1, 0, 1, 0, 1.0]), beta=0.5) == pytest.approx(2 / (0.6745 * np.sqrt(2)))
    # at beta=0.98 the smoothed curve's noise is 5x its step std
    assert smoothed_noise(np.array([0, 1, 0, 1, 0, 1.0])) == pytest.approx(5 * 2 / (0.6745 * np.sqrt(2)))
    assert smoothed_noise(np.linspace(3, 1, 20)) == pytest.approx(0.0, abs=1e-12)  # a trend is not noise
    assert smoothed_noise(np.array([1.0, 2.0])) == 0.0


def test_rise_onset_is_last_point_within_tolerance_of_lowest_before_it() -> None:
    losses = np.array([3, 2, 1, 1.05, 0.98, 1.02, 1.5, 4.0])
    assert rise_onset(losses) == 4  # running min 0.98 from index 4; 1.02 is above it
    assert rise_onset(losses, tolerance=0.05) == 5  # 1.02 <= 0.98 + 0.05; 1.5 is not
    assert rise_onset(losses, start=6) == 6  # only [1.5, 4]: 4 > 1.5


@pytest.mark.parametrize("beta", [0.9, 0.98])
def test_smoothed_noise_is_right_for_the_curves_own_beta(beta: float) -> None:
    # White noise of std 0.1 around a constant, smoothed with `beta`: the EMA's own noise is s sqrt((1-b)/(1+b)).
    raw = 2.0 + 0.1 * np.random.default_rng(0).standard_normal(4000)
    smoothed = np.array(ema_smooth(list(raw), beta))[200:]
    truth = float(np.std(smoothed))
    assert smoothed_noise(smoothed, beta) == pytest.approx(truth, rel=0.15)
    if beta == 0.9:  # read with the old fixed 0.98 it is more than 2x off
        assert smoothed_noise(smoothed, 0.98) > 2.0 * truth


def test_never_turned_up_reads_the_smoothed_and_the_raw_tail() -> None:
    falling = [3.0, 2.0, 1.0, 1.0, 1.0, 1.0]  # fell by 2, ends at its best
    assert never_turned_up(falling, falling)
    assert not never_turned_up([*falling[:-1], 1.3], falling)  # smoothed rose 0.3 > 0.1 x its fall of 2
    assert not never_turned_up(falling, [3.0, 2.0, 3.0, 3.0, 3.0, 3.0])  # raw tail median 3 gave back the fall
    assert not never_turned_up(falling, [*falling[:-1], float("nan")])  # a non-finite raw loss is a blow-up
    assert not never_turned_up([1.0], [1.0])  # too few points to tell
