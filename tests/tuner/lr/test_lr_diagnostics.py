"""Diagnostics on hand-made curves: each finding fires on its textbook case and stays quiet on a healthy curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from traenslenzor.tuner.lr.curve import never_turned_up
from traenslenzor.tuner.lr.diagnostics import Finding, diagnose
from traenslenzor.tuner.lr.result import LRFinderResult
from traenslenzor.tuner.lr.schedule import lr_schedule
from traenslenzor.tuner.lr.smoothing import ema_smooth


def _result(raw: list[float], stop_reason: str, num_training: int | None = None, beta: float = 0.0):
    """A result as RangeTest records it: LRs from the sweep, the EMA of raw (NaN where raw is not finite)."""
    num_training = num_training or len(raw)
    lrs = lr_schedule(1e-6, 1.0, num_training, "exponential")[: len(raw)]
    smoothed = [s if math.isfinite(r) else math.nan for r, s in zip(raw, ema_smooth(raw, beta), strict=True)]
    return LRFinderResult(lrs, smoothed, raw, 1e-6, 1.0, num_training, stop_reason=stop_reason)


def _codes(result: LRFinderResult, method: str | None = "steepest") -> list[str]:
    return [f.code for f in diagnose(result, method=method)]


# flat for 30 steps, falls 2.0 -> 0.5 over 30, then rises until 4x the best: the textbook curve
HEALTHY = [2.0] * 30 + [2.0 - 0.05 * i for i in range(1, 31)] + [0.5 + 0.2 * i for i in range(1, 15)]


def test_healthy_curve_has_no_findings() -> None:
    assert _codes(_result(HEALTHY, "diverged", num_training=100)) == []


def test_never_decreased_and_never_diverged_on_a_flat_curve() -> None:
    codes = _codes(_result([2.0] * 60, "completed"))
    assert "never_decreased" in codes and "never_diverged" in codes


def test_falling_to_the_end_never_diverged_suggestion_not_at_edge() -> None:
    # Falls until max_lr then flattens a little: nothing shows where training breaks.
    raw = [2.0] * 20 + [2.0 - 0.02 * i for i in range(1, 71)] + [0.6] * 10
    assert _codes(_result(raw, "completed")) == ["never_diverged"]


def test_noisy_curve() -> None:
    # A fall of 0.5 over 100 steps under batch noise of std 2: the smoothed curve (beta 0.98) wanders by ~0.2-0.3,
    # so its valley is less than MIN_SIGNAL_TO_NOISE (3) noise sigmas deep.
    trend = 2.0 - 0.005 * np.arange(100)
    raw = list(trend + 2.0 * np.random.default_rng(0).standard_normal(100))
    findings = diagnose(_result(raw, "completed", beta=0.98), method="steepest")
    noisy = [f for f in findings if f.code == "noisy"]
    assert len(noisy) == 1 and noisy[0].severity == "warning" and "num_training" in noisy[0].message
    # the same fall under 10x less noise is readable, and without noise too
    quiet = list(trend + 0.2 * np.random.default_rng(0).standard_normal(100))
    assert "noisy" not in _codes(_result(quiet, "completed", beta=0.98))
    assert "noisy" not in _codes(_result(list(trend), "completed", beta=0.98))


def test_small_but_clean_fall_is_a_decrease() -> None:
    # 3% down from a plateau of 1.4 and a short valley, then a blow-up: the smoothed loss falls ~2% (like the
    # benchmark's mlp_sgd curves), a real, readable fall
    raw = [1.4] * 40 + [1.4 - 0.0015 * i for i in range(1, 31)] + [1.355] * 10 + [1.355 * 1.2**i for i in range(1, 10)]
    codes = _codes(_result(raw, "diverged", num_training=100, beta=0.98))
    assert "never_decreased" not in codes and "noisy" not in codes
    # 0.5% is not (below MIN_DECREASE = 1%)
    raw = [1.4] * 40 + [1.4 - 0.0002 * i for i in range(1, 31)] + [1.394 * 1.2**i for i in range(1, 10)]
    assert "never_decreased" in _codes(_result(raw, "diverged", num_training=100, beta=0.98))


def test_diverged_at_once_says_lower_min_lr() -> None:
    findings = diagnose(_result([2.0, 1.9, 3.0, 9.0], "diverged", num_training=100))
    codes = [f.code for f in findings]
    assert codes[:2] == ["too_few_points", "diverged_early"]
    assert "noisy" not in codes  # the blow-up is not noise
    early = findings[1]
    assert "Lower min_lr" in early.message and "1e-08" in early.message


def test_nan_from_the_first_step_is_the_only_finding() -> None:
    findings = diagnose(_result([math.nan], "non_finite_loss", num_training=100))
    assert findings == [Finding("nan_at_start", "error", findings[0].message)]
    assert "not the learning rate" in findings[0].message


def test_no_points() -> None:
    assert [f.code for f in diagnose(LRFinderResult([], [], [], 1e-6, 1.0, 100))] == ["no_points"]


def test_no_suggestion() -> None:
    # Only rises: steepest finds no fall.
    findings = diagnose(_result([1.0 + 0.01 * i for i in range(40)], "completed"), method="steepest")
    assert [f.code for f in findings if f.code == "no_suggestion"] == ["no_suggestion"]


def test_suggestion_at_low_edge() -> None:
    # Falls fastest at the very start (steepest picks the first point it may look at), then blows up.
    raw = [0.5 + 1.5 * math.exp(-i / 5) for i in range(40)] + [0.5 * 1.5**i for i in range(1, 6)]
    codes = _codes(_result(raw, "diverged", num_training=60))
    assert "suggestion_at_low_edge" in codes


def test_suggestion_at_high_edge() -> None:
    # Flat, then falls steepest in the last points before max_lr.
    raw = [2.0] * 50 + [2.0 - 0.01 * i**2 for i in range(1, 11)]
    codes = _codes(_result(raw, "completed"))
    assert "suggestion_at_high_edge" in codes


@pytest.mark.parametrize("severity", ["info", "warning", "error"])
def test_finding_str(severity) -> None:
    assert str(Finding("x", severity, "msg")) == f"[{severity}] msg"


def test_no_never_diverged_when_only_the_raw_loss_blew_up() -> None:
    # Falls 2.0 -> 0.5, then the raw loss climbs in the last 4 steps; the beta=0.98 EMA, ~50 steps behind, has
    # barely moved. The curve did turn up, so "never turned up" would be false advice.
    raw = [2.0] * 20 + list(np.linspace(2.0, 0.5, 30)) + [0.5] * 80 + [0.5 + 0.6 * i for i in range(1, 5)]
    result = _result(raw, "completed", beta=0.98)
    assert result.losses[-1] - min(result.losses) < 0.1 * (result.losses[0] - min(result.losses))  # EMA: flat
    assert "never_diverged" not in _codes(result)
    assert not never_turned_up(result.losses, result.raw_losses)
    assert never_turned_up(result.losses[:130], result.raw_losses[:130])  # before the climb it had not turned up


def test_the_log_says_when_the_wall_alone_decided_or_was_not_reached() -> None:
    import numpy as np

    from traenslenzor.tuner.lr.result import LRFinderResult

    x = np.linspace(-6.0, 0.0, 60)
    lrs = list(10.0**x)
    flat = list(2.0 + 0.01 * np.exp((x + 1.0) / 0.1))  # no descent, a blow-up
    result = LRFinderResult(lrs, flat, flat, 1e-6, 1.0, 60, probe_losses=flat)
    assert "wall_only" in [f.code for f in result.diagnostics()]
    falling = list(2.0 - 0.1 * (x + 6.0))  # falls to the end: never climbs back
    result = LRFinderResult(lrs, falling, falling, 1e-6, 1.0, 60, probe_losses=falling)
    assert "wall_not_reached" in [f.code for f in result.diagnostics()]
    assert "wall_only" not in [f.code for f in result.diagnostics(method="stable")]
