"""LR sweeps: exact end points, uniform ratio/difference, and the input checks."""

from __future__ import annotations

import itertools
import math

import pytest

from traenslenzor.tuner.lr.schedule import SCHEDULES, exponential_lr, linear_lr, lr_schedule, validate_range


def test_exponential_by_hand() -> None:
    # 1e-4 -> 1 over 5 points: one decade per step.
    lrs = lr_schedule(1e-4, 1.0, 5, "exponential")
    assert lrs[0] == 1e-4 and lrs[-1] == 1.0
    for got, want in zip(lrs, [1e-4, 1e-3, 1e-2, 1e-1, 1.0], strict=True):
        assert got == pytest.approx(want, rel=1e-12)


def test_exponential_uniform_ratio_and_exact_ends() -> None:
    lrs = lr_schedule(1e-8, 1.0, 100, "exponential")
    assert len(lrs) == 100 and lrs[0] == 1e-8 and lrs[-1] == 1.0
    ratio = 10 ** (8 / 99)
    for a, b in itertools.pairwise(lrs):
        assert b / a == pytest.approx(ratio, rel=1e-9)


def test_linear_by_hand() -> None:
    assert lr_schedule(0.1, 0.5, 5, "linear") == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5], rel=1e-12)
    lrs = lr_schedule(1e-3, 1.0, 7, "linear")
    assert lrs[0] == 1e-3 and lrs[-1] == 1.0
    diffs = [b - a for a, b in itertools.pairwise(lrs)]
    assert diffs == pytest.approx([(1.0 - 1e-3) / 6] * 6, rel=1e-9)


def test_two_points_are_the_ends() -> None:
    for mode in SCHEDULES:
        assert lr_schedule(1e-5, 1e-1, 2, mode) == [1e-5, 1e-1]


def test_single_step_functions_match_schedule() -> None:
    assert exponential_lr(1e-6, 1e-2, 2, 5) == pytest.approx(1e-4, rel=1e-12)
    assert linear_lr(0.0 + 1e-3, 1.0 + 1e-3, 2, 5) == pytest.approx(0.501, rel=1e-12)
    with pytest.raises(ValueError, match="outside"):
        exponential_lr(1e-6, 1e-2, 5, 5)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1.0, 1.0, 10, "exponential"), "smaller than max_lr"),
        ((1.0, 1e-3, 10, "exponential"), "smaller than max_lr"),
        ((0.0, 1.0, 10, "exponential"), "positive"),
        ((-1e-3, 1.0, 10, "linear"), "positive"),
        ((1e-3, math.inf, 10, "linear"), "positive finite"),
        ((math.nan, 1.0, 10, "linear"), "positive finite"),
        ((1e-3, 1.0, 1, "exponential"), "at least 2"),
        ((1e-3, 1.0, 2.5, "exponential"), "at least 2"),
        ((1e-3, 1.0, 10, "cosine"), "exponential"),
    ],
)
def test_validate_range_rejects_with_fix(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        validate_range(*args)
    with pytest.raises(ValueError, match=match):
        lr_schedule(*args)
