"""The wall reading: hand-built curves whose wall is known, flat curves, the band, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from traenslenzor.tuner.lr.wall import (
    FLAT_WALL_RISE,
    MID_DECADES_BELOW,
    START_POINTS,
    WALL_DECADES_BELOW,
    WALL_LEVEL,
    centred_smooth,
    read_wall,
)

X = np.linspace(-6.0, 0.0, 121)  # 0.05 decades a point
LRS = 10.0**X


def _curve(wall_at: float = -1.0, descent_at: float = -3.0) -> np.ndarray:
    """Plateau 2.0, a sigmoid descent to 1.0 around ``descent_at``, an exponential wall from ``wall_at`` on."""
    descent = 1.0 + 1.0 / (1.0 + np.exp((X - descent_at) / 0.2))
    return descent + np.exp((X - wall_at) / 0.1) * 0.01


def test_centred_smoothing_has_no_lag_on_a_straight_line() -> None:
    line = 3.0 - 0.5 * X
    smooth = centred_smooth(X, line)
    inner = slice(10, -10)  # the kernel is cut at the ends
    assert np.allclose(smooth[inner], line[inner], atol=1e-9)


def test_reads_the_wall_where_the_curve_climbs_back_a_quarter_of_its_fall() -> None:
    losses = _curve()
    reading = read_wall(LRS, losses)
    assert reading is not None and reading.rose
    smooth = centred_smooth(X, losses)  # the smoothing moves a convex wall a little left; the level is read on it
    floor = smooth[START_POINTS:].min()
    level = floor + WALL_LEVEL * (np.median(smooth[:START_POINTS]) - floor)
    exact = X[np.flatnonzero((smooth >= level) & (X > -2))[0]]  # first point past the floor above the level
    assert exact - 0.05 <= math.log10(reading.wall_lr) <= exact  # interpolated between it and the point before
    assert math.log10(reading.wall_lr) == pytest.approx(-0.7, abs=0.1)  # the wall's own 0.25 crossing: -0.65
    assert reading.decided_by == "descent+wall"
    assert math.log10(reading.descent_lr) == pytest.approx(-3.0, abs=0.05)  # half-way down the sigmoid
    middle = (math.log10(reading.descent_lr) + math.log10(reading.wall_lr)) / 2
    assert math.log10(reading.lr) == pytest.approx(middle - MID_DECADES_BELOW)
    assert reading.low < reading.lr < reading.high


@pytest.mark.parametrize(("wall_at", "descent_at"), [(-2.0, -3.0), (-1.0, -4.0)])
def test_the_answer_moves_half_as_far_as_the_wall_or_the_descent(wall_at: float, descent_at: float) -> None:
    moved = read_wall(LRS, _curve(wall_at=wall_at, descent_at=descent_at))
    base = read_wall(LRS, _curve(wall_at=-1.0, descent_at=-3.0))
    assert moved is not None and base is not None
    assert math.log10(base.lr / moved.lr) == pytest.approx(0.5, abs=0.06)


def test_a_flat_curve_reads_its_blow_up_not_its_noise() -> None:
    rng = np.random.default_rng(0)
    losses = 2.0 + 0.002 * rng.standard_normal(X.size) + 0.01 * np.exp((X + 1.0) / 0.1)
    reading = read_wall(LRS, losses)
    assert reading is not None and reading.rose and reading.decided_by == "wall"
    # where it stands FLAT_WALL_RISE of the start above the floor: 0.01 exp((x + 1) / 0.1) = 0.2 at x = -0.70
    assert math.log10(reading.wall_lr) == pytest.approx(-1.0 + 0.1 * math.log(FLAT_WALL_RISE * 2.0 / 0.01), abs=0.1)
    assert math.log10(reading.lr) == pytest.approx(math.log10(reading.wall_lr) - WALL_DECADES_BELOW)


def test_a_bump_on_a_flat_curve_that_never_fell_is_not_a_wall() -> None:
    # a flat start with a bump of 2 % (many noise sigmas, far less than a blow-up) two decades before the blow-up:
    # the bump once read as the wall and sent the answer three decades low
    rng = np.random.default_rng(1)
    bump = 0.04 * np.exp(-0.5 * ((X + 3.0) / 0.15) ** 2)
    losses = 2.0 + 0.002 * rng.standard_normal(X.size) + bump + 0.01 * np.exp((X + 1.0) / 0.1)
    reading = read_wall(LRS, losses)
    assert reading is not None and reading.decided_by == "wall"
    assert math.log10(reading.wall_lr) > -1.0


def test_a_curve_that_never_rises_reads_its_last_point_as_a_lower_bound() -> None:
    reading = read_wall(LRS, 2.0 - 0.1 * (X + 6.0))
    assert reading is not None and not reading.rose
    assert reading.wall_lr == pytest.approx(LRS[-1])


def test_non_finite_losses_count_as_the_blow_up() -> None:
    losses = _curve()
    losses[-5:] = np.nan
    assert read_wall(LRS, losses) is not None
    assert read_wall(LRS, np.full(X.size, np.nan)) is None


def test_too_few_points_give_none() -> None:
    assert read_wall(LRS[: START_POINTS + 2], _curve()[: START_POINTS + 2]) is None
