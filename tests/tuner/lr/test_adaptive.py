"""``AdaptiveSweep`` on loss curves given as functions of the LR (no model): extension, restart, the step cap."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from traenslenzor.tuner.lr.adaptive import (
    MAX_TOTAL_STEPS_FACTOR,
    AdaptiveRange,
    AdaptiveSweep,
    extension_lrs,
)
from traenslenzor.tuner.lr.settings import StopReason, SweepSettings
from traenslenzor.tuner.lr.sweep import RangeTest


def _drive_on(loss_at: Callable[[float], float]) -> Callable[[RangeTest], None]:
    def drive(test: RangeTest) -> None:
        while not test.done:
            lr = test.lr_at(len(test.lrs))
            test.record(lr, loss_at(lr))

    return drive


def _never_restored() -> None:
    raise AssertionError("restore() was called")


def falling(lr: float) -> float:  # falls across every range the tests use: the loss never turns up
    return 2.0 - 0.05 * math.log10(lr)


def breaks_at_half(lr: float) -> float:  # falls, then blows up past lr = 0.5 (at once: the tests use beta=0)
    return 2.0 - 0.05 * math.log10(lr) if lr <= 0.5 else 100.0 * lr


def test_a_fixed_range_is_one_plain_sweep() -> None:
    sweep = AdaptiveSweep(SweepSettings(1e-4, 1e-2, num_training=20), None)
    test = sweep.run(_drive_on(falling), restore=_never_restored)
    assert len(test.lrs) == 20 and test.extension == () and sweep.metadata(test) == {}


def test_extends_past_max_lr_when_the_loss_never_turned_up() -> None:
    settings = SweepSettings(1e-4, 1e-2, num_training=21, beta=0.0)  # 0.1 decade a step
    sweep = AdaptiveSweep(settings, AdaptiveRange())
    test = sweep.run(_drive_on(breaks_at_half), restore=_never_restored)
    (event,) = sweep.events
    assert event["action"] == "extend" and event["cap"] == pytest.approx(1.0)  # 2 decades past 1e-2: 20 steps
    assert test.stop_reason == StopReason.DIVERGED and test.lrs[-1] == pytest.approx(10**-0.3)  # first past 0.5
    assert test.settings is settings and settings.max_lr == 1e-2  # the request is kept, the extension recorded
    assert sweep.metadata(test) == {
        "adaptive_range": sweep.events,
        "requested_range": [1e-4, 1e-2],
        "total_steps": len(test.lrs),
    }


def test_restarts_below_min_lr_when_the_loss_blew_up_at_once() -> None:
    restored = []
    sweep = AdaptiveSweep(SweepSettings(10.0, 1e4, num_training=40, beta=0.0), AdaptiveRange())
    test = sweep.run(_drive_on(breaks_at_half), restore=lambda: restored.append(True))
    assert restored == [True] and [event["action"] for event in sweep.events] == ["restart"]
    assert test.settings.min_lr == pytest.approx(1e-2) and test.lrs[0] == pytest.approx(1e-2)
    assert sweep.metadata(test)["total_steps"] == sweep.events[0]["steps"] + len(test.lrs)


def test_a_narrow_range_stays_within_three_sweeps() -> None:
    # 1e-5..3e-5 in 100 steps is 0.0048 decades a step: 2 decades more would be 414 steps (5.1x in all).
    settings = SweepSettings(1e-5, 3e-5, num_training=100)
    assert len(extension_lrs(settings, 2.0)) == 414
    sweep = AdaptiveSweep(settings, AdaptiveRange())
    test = sweep.run(_drive_on(falling), restore=_never_restored)
    assert sweep.metadata(test)["total_steps"] == len(test.lrs) == MAX_TOTAL_STEPS_FACTOR * 100
    assert sweep.events[0]["cap"] == test.lrs[-1] == test.max_lr


def test_a_restart_counts_against_the_cap() -> None:
    # The first sweep blows up from its first step (x10 a step: a blow-up once the rise clears the noise of the
    # steps before it, at the 3rd); the restart (a hair lower: still a narrow range) never turns up, so the extension
    # gets what the cap leaves after the 3 thrown-away steps and the second sweep.
    sweeps = []

    def drive(test: RangeTest) -> None:
        sweeps.append(test)
        first = len(sweeps) == 1
        while not test.done:
            lr = test.lr_at(len(test.lrs))
            test.record(lr, 10.0 ** len(test.lrs) if first else falling(lr))

    settings = SweepSettings(1e-2, 1.1e-2, num_training=40, beta=0.0)
    sweep = AdaptiveSweep(settings, AdaptiveRange(restart_decades=0.05))
    test = sweep.run(drive, restore=lambda: None)
    restart, extend = sweep.events
    assert restart["action"] == "restart" and restart["steps"] == 3 and extend["action"] == "extend"
    assert sweep.metadata(test)["total_steps"] == 3 + len(test.lrs) == 3 * 40


def test_extension_lrs_respects_max_steps() -> None:
    settings = SweepSettings(1e-4, 1e-2, num_training=21)
    assert len(extension_lrs(settings, 2.0)) == 20
    assert extension_lrs(settings, 2.0, max_steps=5) == extension_lrs(settings, 2.0)[:5]
    assert extension_lrs(settings, 2.0, max_steps=0) == []


def _drive_with_probe(probe_at: Callable[[float], float]) -> Callable[[RangeTest], None]:
    """Training loss and fixed-batch (probe) loss both ``probe_at(lr)``, the probe recorded at every step."""

    def drive(test: RangeTest) -> None:
        while not test.done:
            lr = test.lr_at(len(test.lrs))
            test.record(lr, probe_at(lr), probe_at(lr))

    return drive


def flat_then_blows_up(lr: float) -> float:  # never falls; blows up around lr = 0.1 (10 % above the start at ~0.2)
    return 2.0 + 0.01 * math.exp((math.log10(lr) + 1.0) / 0.1)


def test_a_flat_start_gets_one_slower_second_look_below_its_wall() -> None:
    restored = []
    settings = SweepSettings(1e-6, 10.0, num_training=60, early_stop_threshold=None)
    sweep = AdaptiveSweep(settings, AdaptiveRange(extend_decades=0, second_look_decades=3.5))
    test = sweep.run(_drive_with_probe(flat_then_blows_up), restore=lambda: restored.append(True))
    (event,) = sweep.events
    assert restored == [True] and event["action"] == "second_look" and "flat start" in event["reason"]
    assert event["steps"] == 60 and len(event["first_look"]["lr"]) == 60  # the first curve is kept for the plot
    # the same steps over second_look_decades, ending half a decade past the first curve's wall (at most its end)
    assert len(test.lrs) == 60 and math.log10(test.lrs[-1] / test.lrs[0]) == pytest.approx(3.5)
    assert 0.1 < test.lrs[-1] <= 10.0
    assert sweep.metadata(test)["total_steps"] == 120


def test_no_second_look_where_the_curve_fell_nor_by_default() -> None:
    def falls_then_blows_up(lr: float) -> float:
        return 1.0 + 1.0 / (1.0 + math.exp((math.log10(lr) + 3.0) / 0.2)) + flat_then_blows_up(lr) - 2.0

    settings = SweepSettings(1e-6, 10.0, num_training=60, early_stop_threshold=None)
    sweep = AdaptiveSweep(settings, AdaptiveRange(extend_decades=0, second_look_decades=3.5))
    sweep.run(_drive_with_probe(falls_then_blows_up), restore=_never_restored)
    assert sweep.events == []
    off = AdaptiveSweep(settings, AdaptiveRange(extend_decades=0))  # the default: no second look
    off.run(_drive_with_probe(flat_then_blows_up), restore=_never_restored)
    assert off.events == []
