"""Candidate readings of a stored range-test run (``benchmarks.lr_readings`` scores them)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from traenslenzor.tuner.lr.suggestion import suggest
from traenslenzor.tuner.lr.wall import read_wall

Reading = Callable[[dict, dict], "float | None"]


def arrays(run: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nan = float("nan")
    lrs = np.array(run["lrs"], dtype=float)
    raw = np.array([nan if v is None else v for v in run["raw"]])
    smooth = np.array([nan if v is None else v for v in run["smooth"]])
    return lrs, raw, smooth


def probe_view(run: dict, batches: int = 4, every: int = 1) -> np.ndarray:
    """The probe curve as if ``batches`` batches were measured every ``every``-th step (NaN elsewhere)."""
    out = np.full(len(run["lrs"]), np.nan)
    probes = run["probe"][-len(run["lrs"]) :]  # after a restart, the curve that counts is the last
    for i, values in enumerate(probes):
        if i % every == every - 1 or i == len(probes) - 1:
            vals = [v for v in values[:batches] if v is not None]
            out[i] = np.mean(vals) if len(vals) == batches else np.inf
    return out


def rule(name: str, curve: str = "smooth") -> Reading:
    """A registered suggestion rule of ``traenslenzor.tuner`` applied to the stored smoothed/raw curve."""

    def read(run: dict, row: dict) -> float | None:
        lrs, raw, smooth = arrays(run)
        return suggest(lrs, smooth if curve == "smooth" else raw, method=name).lr

    return read


SKIP_BEGIN, SKIP_END = 10, 1


def _points(lrs: np.ndarray, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    stop = len(lrs) - SKIP_END
    x, y = lrs[SKIP_BEGIN:stop], curve[SKIP_BEGIN:stop]
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    return x[keep], y[keep]


def wall_reading(run: dict, batches: int = 4, every: int = 1):
    lrs, _, _ = arrays(run)
    return read_wall(*_points(lrs, probe_view(run, batches, every)))


def wall(batches: int = 4, every: int = 1):
    def read(run, row):
        r = wall_reading(run, batches, every)
        return None if r is None else r.lr

    return read


def blend(a, b, w: float = 0.5):
    def read(run, row):
        x, y = a(run, row), b(run, row)
        if not x or not y:
            return x or y
        return 10 ** (w * math.log10(x) + (1 - w) * math.log10(y))

    return read


READINGS = {
    "stable": rule("stable"),
    "wall": wall(),
    "wall_b2": wall(batches=2),
    "wall_e2": wall(every=2),
    "wall_e3": wall(every=3),
    "wall_e4": wall(every=4),
    "wall_b2e2": wall(batches=2, every=2),
    "wall_b1": wall(batches=1),
    "blend": blend(rule("stable"), wall()),
}


def lower(a, b):
    def read(run, row):
        x, y = a(run, row), b(run, row)
        if not x or not y:
            return x or y
        return min(x, y)

    return read


def find_lr_default(run, row):
    """What ``find_lr`` with its defaults answered on the same task and seed (recorded beside the curve)."""
    real = run.get("find_lr")
    return None if real is None else real["lr"]


def previous_wall(run, row):
    """The default before this round: ``wall`` on the probe after every step, flat curves read 0.75 decades below
    a wall of 3 noise sigmas (``FLAT_WALL_RISE`` 0)."""
    from traenslenzor.tuner.lr import wall as module

    saved = module.FLAT_WALL_RISE, module.WALL_DECADES_BELOW
    module.FLAT_WALL_RISE, module.WALL_DECADES_BELOW = 0.0, 0.75
    try:
        return wall()(run, row)
    finally:
        module.FLAT_WALL_RISE, module.WALL_DECADES_BELOW = saved


REPORT = {
    "stable (before 2026-12-06)": rule("stable"),
    "wall (2026-12-06)": previous_wall,
    "blend (today)": blend(rule("stable"), wall(every=2)),
}
