"""Bias-corrected EMA and the divergence predicate, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from traenslenzor.tuner.lr.smoothing import EmaSmoother, ema_smooth, has_diverged


def test_ema_first_points_by_hand() -> None:
    # beta=0.5: a0 = 0.5*4 = 2 -> 2/0.5 = 4; a1 = 0.5*2 + 0.5*2 = 2 -> 2/0.75 = 8/3;
    # a2 = 0.5*2 + 0.5*8 = 5 -> 5/0.875 = 40/7.
    assert ema_smooth([4.0, 2.0, 8.0], beta=0.5) == pytest.approx([4.0, 8 / 3, 40 / 7], rel=1e-12)


def test_ema_first_point_equals_raw_and_constant_stays_constant() -> None:
    smoothed = ema_smooth([2.5] * 50, beta=0.98)
    assert smoothed[0] == 2.5
    assert smoothed == pytest.approx([2.5] * 50, rel=1e-12)  # no bias towards zero


def test_ema_beta_zero_is_identity_and_incremental_matches_batch() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert ema_smooth(values, beta=0.0) == values
    smoother = EmaSmoother(0.9)
    assert [smoother.update(v) for v in values] == ema_smooth(values, beta=0.9)


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5])
def test_bad_beta(beta) -> None:
    with pytest.raises(ValueError, match="beta"):
        ema_smooth([1.0], beta=beta)


def test_has_diverged() -> None:
    assert has_diverged(4.01, 1.0, 4.0)
    assert not has_diverged(4.0, 1.0, 4.0)  # strictly above
    assert not has_diverged(1e9, 1.0, None)  # disabled
    assert has_diverged(math.nan, 1.0, 4.0)
    assert has_diverged(math.inf, 1.0, 4.0)
    # best <= 0: the rise is measured as a distance, (threshold - 1) * |best|.
    assert not has_diverged(-1.0, -2.0, 4.0)  # rose by 1 < 3 * 2
    assert has_diverged(4.5, -2.0, 4.0)  # rose by 6.5 > 6
