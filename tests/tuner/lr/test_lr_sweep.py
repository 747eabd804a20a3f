"""SweepSettings validation, RangeTest sequences (stop on NaN, divergence, completion), the per-group LR helpers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from traenslenzor.tuner.lr.param_groups import group_lr_ratios, set_group_lrs
from traenslenzor.tuner.lr.settings import DEFAULT_SWEEP, StopReason, SweepSettings
from traenslenzor.tuner.lr.sweep import RangeTest


def _run(test: RangeTest, losses: list[float]) -> int:
    for step, loss in enumerate(losses):
        if test.record(test.lr_at(step), loss):
            return step
    return -1


def test_completes_at_num_training() -> None:
    test = RangeTest(SweepSettings(1e-4, 1.0, num_training=5, beta=0.5))
    assert _run(test, [4.0, 2.0, 8.0, 1.0, 1.0, 99.0]) == 4
    assert test.done and test.stop_reason is StopReason.COMPLETED
    result = test.result(note="x")
    assert result.lrs == pytest.approx((1e-4, 1e-3, 1e-2, 1e-1, 1.0), rel=1e-12)
    assert result.raw_losses == (4.0, 2.0, 8.0, 1.0, 1.0)
    assert result.losses[:3] == pytest.approx((4.0, 8 / 3, 40 / 7), rel=1e-12)
    assert result.stop_reason == "completed" and result.metadata == {"note": "x"}
    assert result.num_training == 5 and result.mode == "exponential" and result.early_stop_threshold == 4.0
    assert result.beta == 0.5 and result.settings == test.settings


def test_a_continuation_lengthens_a_completed_sweep_once_and_leaves_the_settings_alone() -> None:
    settings = SweepSettings(1e-4, 1.0, num_training=3, beta=0.0)
    asked = []

    def continuation(test: RangeTest) -> list[float]:
        asked.append((len(test.lrs), test.stop_reason))
        return [10.0, 100.0]

    test = RangeTest(settings, continuation=continuation)
    assert _run(test, [3.0, 2.0, 1.0, 0.5, 0.4, 0.3]) == 4  # 3 steps, then the 2 of the continuation
    assert asked == [(3, StopReason.COMPLETED)]  # asked once, when the sweep completed
    assert test.extension == (10.0, 100.0) and test.lr_at(3) == 10.0 and test.stop_reason == "completed"
    assert test.settings is settings and settings == SweepSettings(1e-4, 1.0, num_training=3, beta=0.0)
    result = test.result()
    assert (result.min_lr, result.max_lr, result.num_training) == (1e-4, 100.0, 5)  # the sweep that ran
    ended = RangeTest(settings, continuation=lambda test: [])
    assert _run(ended, [3.0, 2.0, 1.0]) == 2 and ended.num_training == 3 and ended.max_lr == 1.0


def test_stops_at_once_on_nan_and_inf() -> None:
    for bad in (math.nan, math.inf):
        test = RangeTest(SweepSettings(1e-4, 1.0, num_training=10))
        assert _run(test, [2.0, 1.5, bad, 1.0]) == 2
        assert test.stop_reason is StopReason.NON_FINITE_LOSS
        assert len(test.lrs) == 3 and math.isnan(test.losses[-1])
        assert test.raw_losses[:2] == [2.0, 1.5] and not math.isfinite(test.raw_losses[-1])
    first = RangeTest(SweepSettings(1e-4, 1.0, num_training=10))
    assert first.record(first.lr_at(0), math.nan) and first.stop_reason == "non_finite_loss"


def test_stops_on_divergence() -> None:
    # beta=0: smoothed == raw. Best is 1.0; 4.0 is not > 4 * 1.0, 4.5 is (and clears the noise of the steps before).
    test = RangeTest(SweepSettings(1e-4, 1.0, num_training=10, beta=0.0, early_stop_threshold=4.0))
    assert _run(test, [2.0, 1.0, 1.1, 1.05, 1.02, 4.0, 4.5, 0.1]) == 6
    assert test.stop_reason is StopReason.DIVERGED
    assert test.raw_losses == [2.0, 1.0, 1.1, 1.05, 1.02, 4.0, 4.5]


def test_noise_near_a_loss_of_zero_is_not_a_blow_up() -> None:
    # a model that already fits its batches (the whole model after a fine-tuned head): most batches ~0.003, one in
    # five with a mistake ~0.06, at LRs where nothing moves. "4 x the best" alone stopped this at its second point.
    quiet = [0.06 if i % 5 == 1 else 0.003 + 0.001 * (i % 3) for i in range(60)]
    test = RangeTest(SweepSettings(1e-7, 1.0, num_training=80, early_stop_threshold=4.0))
    rise = [0.1, 0.3, 0.8, 1.5, 2.5, 4.0, 6.0, 9.0, 12.0, 15.0]  # ... and then it does blow up
    stopped = _run(test, quiet + rise + [0.003] * 10)
    assert test.stop_reason is StopReason.DIVERGED and len(quiet) < stopped < len(quiet) + len(rise)


def test_threshold_none_never_diverges() -> None:
    test = RangeTest(SweepSettings(1e-4, 1.0, num_training=4, beta=0.0, early_stop_threshold=None))
    assert _run(test, [1.0, 100.0, 1e6, 1e9]) == 3
    assert test.stop_reason == "completed"


def test_record_after_stop_raises_and_lr_at_bounds() -> None:
    test = RangeTest(SweepSettings(1e-4, 1.0, num_training=2))
    _run(test, [1.0, 1.0])
    with pytest.raises(RuntimeError, match="already stopped"):
        test.record(1.0, 1.0)
    with pytest.raises(IndexError):
        test.lr_at(2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_lr": 1.0, "max_lr": 0.1}, "smaller than max_lr"),
        ({"num_training": 1}, "at least 2"),
        ({"mode": "cos"}, "mode"),
        ({"early_stop_threshold": 1.0}, "above 1"),
        ({"early_stop_threshold": math.nan}, "above 1"),
        ({"beta": 1.0}, "beta"),
        ({"beta": math.nan}, "beta"),
        ({"min_lr": 0.0}, "positive"),
    ],
)
def test_bad_settings_rejected_when_built(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SweepSettings(**kwargs)


def test_settings_defaults_frozen_and_taken_unchanged() -> None:
    assert SweepSettings(1e-8, 1.0, 100, "exponential", 4.0, 0.98) == DEFAULT_SWEEP
    settings = SweepSettings(min_lr=1e-6, max_lr=10, num_training=7, beta=0.9)
    assert isinstance(settings.max_lr, float) and settings.max_lr == 10.0
    with pytest.raises(AttributeError):
        settings.min_lr = 1.0  # type: ignore[misc]
    test = RangeTest(settings)
    assert test.settings is settings and RangeTest().settings is DEFAULT_SWEEP
    with pytest.raises(TypeError, match="SweepSettings"):
        RangeTest({"min_lr": 1e-6})  # type: ignore[arg-type]


def test_stop_reason_is_the_old_string() -> None:
    assert StopReason.COMPLETED == "completed" and f"{StopReason.DIVERGED}" == "diverged"
    assert [reason.value for reason in StopReason] == ["completed", "diverged", "non_finite_loss"]


def _optimizer(lrs: list[float]) -> torch.optim.Optimizer:
    layers = [nn.Linear(2, 2) for _ in lrs]
    return torch.optim.SGD([{"params": m.parameters(), "lr": lr} for m, lr in zip(layers, lrs, strict=True)])


def test_group_ratios_preserved() -> None:
    optimizer = _optimizer([1e-2, 1e-3, 0.0])
    ratios = group_lr_ratios(optimizer)
    assert ratios == pytest.approx([1.0, 0.1, 0.0], rel=1e-12)
    set_group_lrs(optimizer, 0.5, ratios)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.5, 0.05, 0.0], rel=1e-12)


def test_group_ratios_first_zero() -> None:
    assert group_lr_ratios(_optimizer([0.0, 0.0])) == [1.0, 1.0]
    with pytest.raises(ValueError, match="first param group"):
        group_lr_ratios(_optimizer([0.0, 1e-3]))


def test_tensor_lr_set_in_place() -> None:
    param = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([param], lr=torch.tensor(1e-3))
    lr_tensor = optimizer.param_groups[0]["lr"]
    set_group_lrs(optimizer, 0.25, group_lr_ratios(optimizer))
    assert optimizer.param_groups[0]["lr"] is lr_tensor and float(lr_tensor) == 0.25
