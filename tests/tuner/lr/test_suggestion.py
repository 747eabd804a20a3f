"""Suggestion rules: a contract test over the registry, hand-computed cases per rule, `suggest` book-keeping."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from traenslenzor.tuner.lr.smoothing import ema_smooth
from traenslenzor.tuner.lr.suggestion import (
    DEFAULT_SUGGESTION,
    STABLE_DECADES_BELOW,
    SUGGESTIONS,
    SuggestionOutcome,
    minimum,
    slide,
    stable,
    steepest,
    suggest,
    valley,
)

LRS10 = 10.0 ** np.arange(-9, 1, dtype=float)  # 1e-9 .. 1e0, one point per decade

AWKWARD_CURVES = {
    "empty": ([], []),
    "one point": ([1e-3], [1.0]),
    "two points": ([1e-3, 1e-2], [1.0, 0.5]),
    "flat": (LRS10, np.ones(10)),
    "rising": (LRS10, np.arange(10.0)),
    "falling": (LRS10, -np.arange(10.0)),
    "all nan": (LRS10, np.full(10, np.nan)),
    "nan inside": (LRS10, np.array([3, 3, 2, np.nan, 1, np.inf, 0.5, 0.4, -np.inf, 9.0])),
    "repeated lr": (np.full(10, 1e-3), np.linspace(2, 1, 10)),
    "zero lr": (np.r_[0.0, LRS10[1:]], np.linspace(2, 1, 10)),
    "typical": (
        np.logspace(-8, 0, 100),
        np.r_[np.full(40, 2.3), np.linspace(2.3, 0.5, 40), np.geomspace(0.5, 9, 20)],
    ),
}


@pytest.mark.parametrize("name", sorted(SUGGESTIONS))
@pytest.mark.parametrize("curve", sorted(AWKWARD_CURVES))
def test_every_rule_returns_none_or_a_valid_finite_index(name: str, curve: str) -> None:
    lrs, losses = (np.asarray(a, dtype=float) for a in AWKWARD_CURVES[curve])
    index = SUGGESTIONS[name](lrs, losses)
    if index is not None:
        assert isinstance(index, int)
        assert 0 <= index < len(lrs)
        assert np.isfinite(losses[index]) and lrs[index] > 0


def test_default_is_registered() -> None:
    assert DEFAULT_SUGGESTION in SUGGESTIONS


def test_steepest_picks_largest_drop_per_decade() -> None:
    # drops per decade between neighbours: 0, -1, -3, -1, 0 -> central gradients at 1..4: -0.5, -2, -2, -0.5;
    # first of the tie (index 2) wins.
    losses = np.array([5.0, 5.0, 4.0, 1.0, 0.0, 0.0])
    assert steepest(LRS10[:6], losses) == 2


def test_steepest_uses_log_lr_not_raw_lr() -> None:
    # Uneven spacing: x = log10 lr = [0, 1, 3]; raw-LR gradients would favour the first interval, per decade the
    # drops are -1/1 and -3/2: np.gradient on [0,1,3] gives [-1, -1.333.., -1.5] -> index 2.
    lrs = np.array([1.0, 10.0, 1000.0])
    assert steepest(lrs, np.array([4.0, 3.0, 0.0])) == 2


def test_steepest_none_when_loss_never_falls() -> None:
    assert steepest(LRS10, np.arange(10.0)) is None


def test_minimum_is_one_decade_below_lowest_loss() -> None:
    losses = np.array([5, 4, 3, 2, 1, 0.5, 0.2, 3, 9, 20], dtype=float)  # lowest at 1e-3
    assert minimum(LRS10, losses) == 5  # 1e-4
    # off-grid target: points every half decade, lowest at 10**-2 -> target 10**-3 exists at index 2
    lrs = 10.0 ** np.array([-4, -3.5, -3, -2.5, -2])
    assert minimum(lrs, np.array([3, 2, 1.5, 1, 0.5])) == 2


def test_valley_hand_computed() -> None:
    # longest decreasing subsequence: 9 8 7 6 5 4 (indices 1..6) ends at 6 with length 6 -> start = 0,
    # span 6 -> 0 + int(2) + int(1) = 3.
    losses = np.array([1.0, 9, 8, 7, 6, 5, 4, 10, 12, 15])
    assert valley(LRS10, losses) == 3


def test_valley_none_when_loss_only_rises() -> None:
    assert valley(LRS10, np.arange(10.0)) is None


def test_slide_hand_computed() -> None:
    # losses 0,0,0,0,0,1,3,6: np.gradient -> 0,0,0,0,.5,1.5,2.5,3; window 2 (n=8 but window=2 given):
    # right=7,left=5: |3-1.5|>t -> ans 5; right=6,left=4: |2.5-.5|>t -> ans 4; right=5,left=3: |1.5-0|>t -> ans 3;
    # right=4,left=2: |.5-0|>t -> ans 2; right=3,left=1: 0 -> stop. Answer 2.
    losses = np.array([0, 0, 0, 0, 0, 1, 3, 6], dtype=float)
    assert slide(LRS10[:8], losses, window=2) == 2


def test_stable_goes_fixed_decades_below_rise_onset() -> None:
    # smooth curve (median |second difference| 0 -> no tolerance); median 4.5 -> final valley 4..8, floor 7;
    # the loss stays at the floor at index 8 (1e-1), the rise starts after it
    losses = np.array([5, 5, 5, 5, 4, 3, 2, 1, 1, 9.0])
    assert stable(LRS10, losses) == 7  # 10**(-1 - 1.2) -> nearest grid point 1e-2
    assert stable(LRS10, losses, decades_below=2.6) == 5  # 10**-3.6 -> nearest 10**-4 (index 5)
    assert stable(LRS10, losses, decades_below=0.0) == 8  # the onset, not the first lowest point (7)


def test_stable_ignores_early_dip_that_fastai_minimum_takes() -> None:
    losses = np.array([0.1, 5, 5, 5, 5, 4, 3, 2, 1, 9.0])
    assert minimum(LRS10, losses) == 0  # global minimum at the first point, one decade lower clamps to it
    assert stable(LRS10, losses) == 7  # onset at index 8 (1e-1) -> 10**-2.2 -> 1e-2


def test_stable_on_flat_noisy_curve_anchors_on_the_blow_up_not_the_noise_minimum() -> None:
    # Flat up to noise for 80 steps, then blowing up: the lowest smoothed point is wherever the noise dipped,
    # the onset of the rise is not.
    rng = np.random.default_rng(0)
    raw = np.r_[1.4 + 0.05 * rng.standard_normal(80), 1.4 * 1.5 ** np.arange(1, 11)]
    losses = np.asarray(ema_smooth(list(raw), 0.98))
    lrs = np.logspace(-8, 1, 90)
    assert int(np.argmin(losses[:80])) < 70  # the noise minimum is far from the blow-up
    x = np.log10(lrs)
    index = stable(lrs, losses)
    assert index is not None and abs(x[index] - (x[80] - STABLE_DECADES_BELOW)) <= 0.3


def _range_test_curve(min_lr: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """One loss landscape in log-LR (descent around 3e-4, blow-up from ~3e-2), swept at the given density."""
    lrs = min_lr * (1.0 / min_lr) ** (np.arange(steps) / (steps - 1))
    x = np.log10(lrs)
    raw = 1.0 - 0.6 / (1 + np.exp(-(x + 3.5) / 0.4)) + 0.05 * np.exp(np.clip((x + 1.5) * 4, None, 30))
    raw = raw + 0.02 * np.random.default_rng(0).standard_normal(steps)
    return lrs, np.asarray(ema_smooth(list(raw), 0.98))


def test_stable_barely_moves_with_sweep_density_on_a_sharp_blow_up() -> None:
    # The EMA lags ~49 steps in steady state, which is 2-8 decades at these densities (0.03-0.16 decades per
    # step), yet a sharp blow-up is seen a few steps after it starts; measured spread 0.28 decades.
    lrs_found = []
    for min_lr in (1e-8, 1e-6, 1e-5):
        for steps in (50, 100, 200):
            lrs, losses = _range_test_curve(min_lr, steps)
            lrs_found.append(suggest(lrs, losses).lr)
    spread = np.log10(max(lrs_found)) - np.log10(min(lrs_found))
    assert spread < 0.5, lrs_found
    assert min(lrs_found) > 10**-3.5 and max(lrs_found) < 10**-1.5  # past the descent, below the blow-up


def test_stable_none_without_a_descent() -> None:
    assert stable(LRS10, np.arange(10.0)) is None  # lowest at the first point
    assert stable(LRS10, np.ones(10)) is None  # flat


def test_stable_clamps_to_first_point_when_target_is_below_the_curve() -> None:
    losses = np.array([5, 1, 5, 5, 5, 5, 5, 5, 5, 5.0])  # median 5: below only at 1 -> onset at 1e-8
    assert stable(LRS10, losses) == 0


def test_suggest_maps_index_back_and_skips() -> None:
    losses = np.array([9.0, 0.0, 5, 5, 4, 1, 0, 0, 0, -50])
    out = suggest(LRS10, losses, method="steepest", skip_begin=2, skip_end=1)
    # trimmed = [5,5,4,1,0,0,0] at full indices 2..8; gradients -> -0.5,-2,-2,-0.5,0 ... first min at full index 4
    assert out == SuggestionOutcome(index=4, lr=float(LRS10[4]), method="steepest", reason=None)


def test_suggest_skip_end_zero_keeps_last_point() -> None:
    losses = np.array([5, 5, 5, 5, 5, 5, 5, 5, 5, 0], dtype=float)
    out = suggest(LRS10, losses, method="steepest", skip_begin=0, skip_end=0)
    assert out.index == 9


def test_suggest_drops_non_finite_points() -> None:
    losses = np.array([5, 5, np.nan, 4, np.inf, 1, 0, 0, 0, 0], dtype=float)
    out = suggest(LRS10, losses, method="minimum", skip_begin=0, skip_end=0)
    assert out.index is not None and np.isfinite(losses[out.index])


def test_suggest_none_with_reason_when_too_few_points(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="traenslenzor.tuner.lr.suggestion"):
        out = suggest(LRS10, np.arange(10.0), method="steepest", skip_begin=9, skip_end=0)
    assert out.index is None and out.lr is None
    assert "needs 2" in out.reason
    # logged once, at DEBUG: LRFinderResult.suggestion() is the one that warns
    records = [r for r in caplog.records if r.name == "traenslenzor.tuner.lr.suggestion"]
    assert [r.levelno for r in records] == [logging.DEBUG] and "No learning-rate suggestion" in records[0].message


def test_suggest_none_with_reason_when_rule_finds_nothing() -> None:
    out = suggest(LRS10, np.arange(10.0), method="steepest", skip_begin=0, skip_end=0)
    assert out.index is None and "found no suggestion" in out.reason


def test_suggest_rejects_unknown_method_naming_known_ones() -> None:
    with pytest.raises(ValueError, match="steepest"):
        suggest(LRS10, np.ones(10), method="nope")


def test_suggest_rejects_bad_shapes_and_skips() -> None:
    with pytest.raises(ValueError, match="equally long"):
        suggest(LRS10, np.ones(9))
    with pytest.raises(ValueError, match=">= 0"):
        suggest(LRS10, np.ones(10), skip_end=-1)


def test_benchmark_task_suite_smoke() -> None:
    """The LR-quality benchmark's tasks build and evaluate; the benchmark itself is not a test.

    No training step: the first torch optimizer built in a process imports torch._dynamo (seconds).
    """
    import math

    from benchmarks import lr_tasks

    assert len({task.key() for task in lr_tasks.TASKS}) == len(lr_tasks.TASKS) >= 6
    assert all(len(lr_tasks.grid_lrs(task, points_per_decade=4)) >= 16 for task in lr_tasks.TASKS)
    for task in lr_tasks.TASKS:
        data = lr_tasks.make_data(task, n_train=32, n_eval=32)
        assert math.isfinite(lr_tasks.untrained_loss(task, data, seed=0))


def test_result_suggestion_reads_the_curves_beta(monkeypatch: pytest.MonkeyPatch) -> None:
    from traenslenzor.tuner.lr import suggestion as module
    from traenslenzor.tuner.lr.result import LRFinderResult

    seen = []
    real = module.smoothed_noise
    monkeypatch.setattr(module, "smoothed_noise", lambda losses, beta: seen.append(beta) or real(losses, beta))
    lrs = np.logspace(-6, 0, 60)
    losses = np.r_[np.full(20, 2.0), np.linspace(2.0, 1.0, 25), np.linspace(1.0, 3.0, 15)]
    result = LRFinderResult(lrs, losses, losses, 1e-6, 1.0, 60, beta=0.9)
    assert result.suggestion() is not None and seen == [0.9]
    assert suggest(lrs, losses, method="stable", beta=0.9) == result.suggestion_outcome()  # no probe: `stable`
