"""LRFinderResult: Lightning-compatible results, suggestion delegation, JSON round trip, plot."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from traenslenzor.tuner.lr.result import LRFinderResult
from traenslenzor.tuner.lr.schedule import lr_schedule
from traenslenzor.tuner.lr.settings import StopReason
from traenslenzor.tuner.lr.smoothing import ema_smooth
from traenslenzor.tuner.lr.suggestion import SUGGESTIONS, suggest


def _result(raw: list[float], stop_reason: str = "completed", **kwargs) -> LRFinderResult:
    lrs = lr_schedule(1e-6, 1.0, len(raw), "exponential")
    smoothed = [math.nan if not math.isfinite(v) else s for v, s in zip(raw, ema_smooth(raw, 0.5), strict=True)]
    return LRFinderResult(lrs, smoothed, raw, 1e-6, 1.0, len(raw), stop_reason=stop_reason, **kwargs)


def _valley_curve(n: int = 40) -> list[float]:
    # flat, falling, bottom, blow-up
    return [2.0] * 10 + [2.0 - 0.1 * i for i in range(1, 16)] + [0.5] * 5 + [0.5 * 1.5**i for i in range(1, n - 29)]


def test_results_keys_and_lightning_names() -> None:
    result = _result([3.0, 2.0, 1.0])
    assert result.results == {"lr": list(result.lrs), "loss": list(result.losses), "raw_loss": [3.0, 2.0, 1.0]}
    assert result.lr_min == 1e-6 and result.lr_max == 1.0 and result.num_training == 3
    with pytest.raises(ValueError, match="equally long"):
        LRFinderResult([1.0], [1.0, 2.0], [1.0], 1e-6, 1.0, 2)


def test_suggestion_delegates_to_suggest() -> None:
    result = _result(_valley_curve())
    for method in ("steepest", "valley", "minimum", "stable"):
        want = suggest(result.lrs, result.losses, method=method, skip_begin=5, skip_end=2)
        assert result.suggestion(skip_begin=5, skip_end=2, method=method) == want.lr
    # no probe curve: the default falls back to `stable` on the smoothed loss; `wall` by name reads the raw loss
    fallback = suggest(result.lrs, result.losses, method="stable", skip_begin=5, skip_end=2)
    assert result.suggestion(skip_begin=5, skip_end=2) == fallback.lr
    wall = suggest(result.lrs, result.raw_losses, method="wall", skip_begin=5, skip_end=2)
    assert result.suggestion(skip_begin=5, skip_end=2, method="wall") == wall.lr
    with pytest.raises(ValueError, match="unknown suggestion method"):
        result.suggestion(method="nope")


def test_no_suggestion_logs_reason(caplog) -> None:
    result = _result([1.0, 1.0, 1.0])
    with caplog.at_level(logging.WARNING, logger="traenslenzor.tuner.lr.result"):
        assert result.suggestion() is None
    assert any("no suggestion" in r.getMessage() for r in caplog.records if r.name == "traenslenzor.tuner.lr.result")


def test_json_round_trip_with_nan(tmp_path) -> None:
    result = _result([2.0, 1.0, math.nan], stop_reason="non_finite_loss", metadata={"optimizer": "SGD"})
    path = tmp_path / "lr.json"
    text = result.to_json(path)
    assert path.read_text(encoding="utf-8") == text + "\n"
    assert result.to_json() == text and json.loads(text)["stop_reason"] == "non_finite_loss"
    json.loads(text)  # strict JSON: the NaN is stored as null
    assert "NaN" not in text
    back = LRFinderResult.from_json(path)
    assert back.lrs == result.lrs and back.losses[:2] == result.losses[:2] and math.isnan(back.raw_losses[2])
    assert back.to_dict() == result.to_dict()
    assert back.stop_reason is StopReason.NON_FINITE_LOSS and back.metadata == {"optimizer": "SGD"}
    assert back.beta == result.beta
    with pytest.raises(ValueError, match="Unknown keys"):
        LRFinderResult.from_dict({**result.to_dict(), "extra": 1})


def test_frozen() -> None:
    result = _result([1.0, 2.0])
    with pytest.raises(AttributeError):
        result.stop_reason = "x"  # type: ignore[misc]


def _red_dots(ax) -> list:
    return [line for line in ax.get_lines() if line.get_color() == "red" and line.get_marker() == "o"]


def test_plot_returns_figure_with_log_x_and_red_suggestion() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    result = _result(_valley_curve())
    fig = result.plot()
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and ax.get_xscale() == "log"
    (dot,) = _red_dots(ax)
    outcome = result.suggestion_outcome()
    assert list(dot.get_xdata()) == [result.lrs[outcome.index]]
    assert list(dot.get_ydata()) == [result.losses[outcome.index]]
    assert "completed" in ax.get_title() and ax.get_xlabel().startswith("Learning rate")
    assert not _red_dots(result.plot(suggest=False).axes[0])
    plt.close("all")


def test_plot_into_given_axes_and_show(monkeypatch) -> None:
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    fig, (left, right) = plt.subplots(1, 2)
    result = _result(_valley_curve())
    assert result.plot(ax=right, show=True) is fig
    assert shown == [1] and right.get_xscale() == "log" and not left.get_lines()
    plt.close("all")


def test_plot_without_suggestion_and_with_nan() -> None:
    import matplotlib.pyplot as plt

    fig = _result([1.0, 1.0, math.nan], stop_reason="non_finite_loss").plot()
    assert not _red_dots(fig.axes[0]) and any("no suggestion" in t.get_text() for t in fig.axes[0].texts)
    plt.close("all")


def test_importing_the_finder_does_not_import_matplotlib() -> None:
    import subprocess
    import sys

    code = "import sys, traenslenzor.tuner.lr.finder, traenslenzor.tuner.lr.result; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_json_before_beta_was_a_field_reads_it_from_metadata() -> None:
    data = _result([2.0, 1.0, 3.0]).to_dict()
    del data["beta"]
    data["metadata"] = {"beta": 0.9}
    assert LRFinderResult.from_dict(data).beta == 0.9


def test_plot_marks_the_lr_each_rule_suggests() -> None:
    import matplotlib.pyplot as plt

    result = _result(_valley_curve(60))
    marked = {}
    for method in SUGGESTIONS:
        fig = result.plot(method=method)
        (dot,) = _red_dots(fig.axes[0])
        marked[method] = float(dot.get_xdata()[0])
        assert method in dot.get_label()
        plt.close(fig)
    assert marked == {method: result.suggestion(method=method) for method in SUGGESTIONS}
    assert len(set(marked.values())) >= 3  # the rules disagree here, so a plot that ignored method would fail


def test_plot_y_range_shows_the_fall_not_the_blow_up() -> None:
    import matplotlib.pyplot as plt

    raw = [2.0] * 20 + [2.0 - 0.05 * i for i in range(1, 21)] + [1.0 * 3.0**i for i in range(1, 8)]  # up to 2187
    result = _result(raw, stop_reason="diverged")
    fig = result.plot()
    low, high = fig.axes[0].get_ylim()
    assert 2.0 < high < 2.5 and low < min(result.losses)  # a little above the start, far below the blow-up
    plt.close(fig)


def test_plot_y_range_of_a_flat_start_shows_the_rise_the_reading_uses() -> None:
    import matplotlib.pyplot as plt

    raw = [1.30 - 0.0005 * i for i in range(40)] + [1.28 * 1.04**i for i in range(1, 15)]  # fell 1.5 %, then up
    result = _result(raw, stop_reason="completed")
    fig = result.plot()
    low, high = fig.axes[0].get_ylim()
    assert low < 1.281 and high > 1.30 * 1.1  # the 10 % rise above the level is in view, not 15 % of a 0.02 fall
    assert high < 1.30 * 1.2  # and the blow-up beyond it still cut off
    plt.close(fig)


def test_plot_marks_the_requested_range_the_sweep_went_past() -> None:
    import matplotlib.pyplot as plt

    metadata = {"adaptive_range": [{"action": "extend", "reason": "x", "cap": 1.0}], "requested_range": [1e-6, 1e-2]}
    fig = _result(_valley_curve(), metadata=metadata).plot()
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "requested max_lr = 1.00e-02" in labels
    plt.close(fig)


def _probe_result(n: int = 60) -> LRFinderResult:
    """A noisy training loss and a clean fixed-batch curve (descent, floor, wall) over 6 decades."""
    x = np.linspace(-6.0, 0.0, n)
    probe = 1.0 + 1.0 / (1.0 + np.exp((x + 3.0) / 0.2)) + 0.01 * np.exp((x + 1.0) / 0.1)
    raw = probe + 0.3 * np.random.default_rng(0).standard_normal(n)
    return _result(list(raw), probe_losses=list(probe))


def test_the_default_blends_the_wall_on_the_fixed_batch_curve_with_stable_and_carries_a_band() -> None:
    result = _probe_result()
    outcome = result.suggestion_outcome()
    wall = suggest(result.lrs, result.probe_losses, method="wall").lr
    stable = suggest(result.lrs, result.losses, method="stable").lr
    assert outcome.method == "blend" and result.blend_parts() == (wall, stable)
    assert math.log10(outcome.lr) == pytest.approx((math.log10(wall) + math.log10(stable)) / 2)
    reading = result.reading()
    assert reading is not None and reading.lr == pytest.approx(wall)
    low, high = result.band  # the wall's band, stretched to hold both parts and the answer
    assert low == min(reading.low, stable, outcome.lr) and high == max(reading.high, stable, outcome.lr)
    assert low <= min(wall, stable) and high >= max(wall, stable)
    assert result.results["probe_loss"] == list(result.probe_losses)
    assert _result(_valley_curve()).suggestion_outcome().method == "stable"  # no probe curve: the old default


def test_json_keeps_the_probe_curve_and_reads_format_1_files() -> None:
    result = _probe_result()
    data = json.loads(result.to_json())
    assert data["format"] == "traenslenzor.lr_finder_result/2" and len(data["probe_losses"]) == 60
    assert LRFinderResult.from_dict(data) == result
    old = {**data, "format": "traenslenzor.lr_finder_result/1"}
    del old["probe_losses"]
    loaded = LRFinderResult.from_dict(old)
    assert loaded.probe_losses == () and loaded.suggestion_outcome().method == "stable"
    with pytest.raises(ValueError, match="probe_losses"):
        LRFinderResult(result.lrs, result.losses, result.raw_losses, 1e-6, 1.0, 60, probe_losses=(1.0,))


def test_plot_draws_the_curve_it_read_without_lag_and_shades_the_band() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon, Rectangle

    result = _probe_result()
    ax = result.plot().axes[0]
    (read,) = [line for line in ax.get_lines() if "read" in str(line.get_label())]
    assert "fixed-batch" in str(read.get_label())
    (dot,) = _red_dots(ax)
    assert dot.get_xdata()[0] == pytest.approx(result.suggestion())
    # the drawn curve's lowest point sits where the probe's is (a lagging EMA would put it to the right)
    lowest = read.get_xdata()[int(np.argmin(read.get_ydata()))]
    true_lowest = result.lrs[int(np.argmin(result.probe_losses))]
    assert abs(math.log10(lowest / true_lowest)) < 0.3
    shaded = [p for p in ax.patches if isinstance(p, Polygon | Rectangle) and "band" in str(p.get_label())]
    assert len(shaded) == 1
    plt.close("all")
