"""The adaptive range of ``find_lr``: widen the sweep where the curve shows no edge.

A range test can only read an LR out of a curve that shows where training breaks. Two cases do not:

* **The loss never turned up before max_lr** (neither the smoothed nor the raw loss rose again): the best LR may
  lie beyond the range. The sweep then *continues* from the current state at the same step ratio, up to
  ``extend_decades`` past ``max_lr``, until it diverges or reaches that cap.
* **The loss blew up at once** (within the first quarter of the steps, from a finite first loss): ``min_lr`` is
  already too high. The state is restored and the sweep *restarts* ``restart_decades`` below ``min_lr`` (once).

:class:`AdaptiveSweep` owns both: ``find_lr`` and the Lightning adapter hand it a ``drive(test)`` that runs their
training steps until the :class:`~traenslenzor.tuner.lr.sweep.RangeTest` says stop, and it decides when to
continue (through the test's continuation) and when to restart, records what it did and logs it. The pure
decisions under it (``needs_extension``, ``blew_up_at_once``, ...) stay callable on their own; the curve maths is
``curve``'s. Cost: an extension adds ``extend_decades`` worth of steps (24 at the default sweep), a restart at most
a quarter of ``num_training`` plus one full sweep; the total is capped at ``MAX_TOTAL_STEPS_FACTOR`` (3) x
``num_training`` (a narrow range's extension is cut short there). Where asked for (``second_look_decades``), a flat
start is swept once more, slower, below its wall: ``num_training`` more steps, recorded as a ``second_look`` event
with the first curve.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from traenslenzor.tuner.lr.curve import never_turned_up
from traenslenzor.tuner.lr.settings import StopReason, SweepSettings
from traenslenzor.tuner.lr.suggestion import SKIP_BEGIN, SKIP_END
from traenslenzor.tuner.lr.sweep import RangeTest
from traenslenzor.tuner.lr.wall import read_curve

log = logging.getLogger(__name__)

# The adaptive sweep's steps in all (a restart's thrown-away steps included) stay within this many times
# num_training: at most a quarter sweep lost to a restart, one sweep, and the extension in what is left.
MAX_TOTAL_STEPS_FACTOR = 3
# A second look ends this many decades past the first curve's wall (the wall is a level crossing of a noisy flat
# curve: it may sit early), and starts ``second_look_decades`` below that end.
SECOND_LOOK_PAST_WALL = 0.5

Drive = Callable[[RangeTest], None]


@dataclass(frozen=True)
class AdaptiveRange:
    """How far ``find_lr`` may widen the sweep; ``find_lr(adaptive_range=None)`` keeps the range fixed.

    Attributes:
        extend_decades: how far past ``max_lr`` the sweep may continue when the loss never turned up (0: never).
        restart_decades: how far below ``min_lr`` the one restart begins when the loss blew up at once (0: never).
        early_fraction: a blow-up within this share of ``num_training`` counts as "at once".
        second_look_decades: where the fixed-batch curve never fell (a flat start), sweep again from the restored
            state, ``num_training`` steps over this many decades ending half a decade past its wall: a slower look
            where the answer lies (0: never, the default: at 3.5 it read worse than the first look on the
            benchmarks' flat curves, docs/suggestion.md).
    """

    extend_decades: float = 2.0
    restart_decades: float = 3.0
    early_fraction: float = 0.25
    second_look_decades: float = 0.0

    def __post_init__(self) -> None:
        for name in ("extend_decades", "restart_decades", "second_look_decades"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 6:
                raise ValueError(f"{name}={value!r}: must be a number of decades in [0, 6] (0 turns it off).")
        if not 0 < self.early_fraction < 1:
            raise ValueError(f"early_fraction={self.early_fraction!r}: must lie in (0, 1) (0.25 is usual).")


DEFAULT_ADAPTIVE_RANGE = AdaptiveRange()


def needs_extension(test: RangeTest, adaptive: AdaptiveRange) -> bool:
    """A completed exponential sweep whose smoothed and raw loss never turned up (``never_turned_up``)."""
    return (
        adaptive.extend_decades > 0
        and test.settings.mode == "exponential"
        and test.stop_reason == StopReason.COMPLETED
        and never_turned_up(test.losses, test.raw_losses)
    )


def blew_up_at_once(test: RangeTest, adaptive: AdaptiveRange) -> bool:
    """Diverged within the first ``early_fraction`` of the steps, from a finite first loss (else not an LR issue)."""
    return (
        adaptive.restart_decades > 0
        and test.stop_reason in (StopReason.DIVERGED, StopReason.NON_FINITE_LOSS)
        and len(test.lrs) <= adaptive.early_fraction * test.settings.num_training
        and bool(test.raw_losses)
        and math.isfinite(test.raw_losses[0])
    )


def second_look_settings(test: RangeTest, adaptive: AdaptiveRange) -> SweepSettings | None:
    """The slower sweep to run where the test's fixed-batch curve never fell, None where it did (or has none).

    ``num_training`` steps from ``second_look_decades - 0.5`` decades below the curve's wall to half a decade past
    it (at most the test's last LR, at least its first): the same steps over a few decades instead of the whole
    range, so that training has time to show a descent below the wall.
    """
    if adaptive.second_look_decades <= 0 or test.settings.mode != "exponential" or not test.probe_losses:
        return None
    reading = read_curve(test.lrs, test.probe_losses, SKIP_BEGIN, SKIP_END)
    if reading is None or reading.descent_lr is not None or not reading.rose:
        return None  # it fell (a descent to read), or it never blew up (no wall to look below)
    high = min(reading.wall_lr * 10**SECOND_LOOK_PAST_WALL, test.lrs[-1])
    low = max(high / 10**adaptive.second_look_decades, test.settings.min_lr)
    if math.log10(high / low) < 1.0:
        return None  # no room below the wall for a slower look
    return replace(test.settings, min_lr=low, max_lr=high)


def second_look_event(test: RangeTest, look: SweepSettings) -> dict[str, Any]:
    """The record (and log line) of a second, slower sweep after a flat first one; keeps the first curve."""
    return {
        "action": "second_look",
        "reason": f"the fixed-batch loss barely fell over {test.lrs[0]:.2e} .. {test.lrs[-1]:.2e} (a flat start: "
        f"no descent to read); swept again from the restored state, {look.num_training} steps over "
        f"{look.min_lr:.2e} .. {look.max_lr:.2e}",
        "steps": len(test.lrs),
        "first_look": {
            "lr": list(test.lrs),
            "probe_loss": [v if math.isfinite(v) else None for v in test.probe_losses],
        },
    }


def extension_lrs(settings: SweepSettings, decades: float, max_steps: int | None = None) -> list[float]:
    """The LRs that continue an exponential sweep past ``max_lr`` at its own step ratio, up to ``decades`` more.

    At most ``max_steps`` of them (None: no limit). Empty for a linear sweep (its steps are too fine to cover
    decades), ``decades == 0`` or ``max_steps <= 0``.
    """
    if settings.mode != "exponential" or decades <= 0 or (max_steps is not None and max_steps <= 0):
        return []
    step = math.log10(settings.max_lr / settings.min_lr) / (settings.num_training - 1)  # decades per step
    count = max(1, math.floor(decades / step + 1e-9))  # the cap stays within `decades`
    if max_steps is not None:
        count = min(count, max_steps)
    return [settings.max_lr * 10 ** (step * i) for i in range(1, count + 1)]


def restart_settings(settings: SweepSettings, decades: float) -> SweepSettings:
    """The same sweep, started ``decades`` below ``min_lr``."""
    return replace(settings, min_lr=settings.min_lr / 10**decades)


def extension_event(settings: SweepSettings, more: list[float]) -> dict[str, Any]:
    """The record (and log line) of a sweep continued past ``max_lr`` to ``more[-1]``."""
    return {
        "action": "extend",
        "reason": f"the loss never turned up before max_lr={settings.max_lr:.2e}; continued the sweep from the "
        f"current state up to {more[-1]:.2e} ({len(more)} more steps at most)",
        "cap": more[-1],
    }


def restart_event(settings: SweepSettings, test: RangeTest, lower: SweepSettings) -> dict[str, Any]:
    """The record (and log line) of a sweep that blew up at once and restarts at ``lower.min_lr``."""
    return {
        "action": "restart",
        "reason": f"the loss blew up after {len(test.lrs)} of {settings.num_training} steps "
        f"(at lr={test.lrs[-1]:.2e}): min_lr={settings.min_lr:.2e} was already too high; "
        f"restarted at {lower.min_lr:.2e} from the restored state",
        "steps": len(test.lrs),
    }


class AdaptiveSweep:
    """One range test with the adaptive range: a restart below ``min_lr`` and a continuation past ``max_lr``.

    ``AdaptiveSweep(settings, adaptive).run(drive, restore)`` builds the :class:`RangeTest`, has ``drive`` run it,
    and where it ``blew_up_at_once`` calls ``restore()`` and has ``drive`` run a fresh test from below ``min_lr``
    (once). A completed sweep that ``needs_extension`` continues through the test's continuation, inside the same
    ``drive`` call, so the loop goes on from its current state and data position. With ``adaptive=None`` the
    range stays fixed: one plain sweep.

    Args:
        settings: the sweep as requested (validated when built).
        adaptive: how far the sweep may widen; None keeps it fixed.

    Attributes:
        events: what it did, in order (``{"action": "extend" | "restart", "reason": ..., ...}``).
    """

    def __init__(self, settings: SweepSettings, adaptive: AdaptiveRange | None) -> None:
        self.settings = settings
        self.adaptive = adaptive
        self.events: list[dict[str, Any]] = []

    def run(self, drive: Drive, restore: Callable[[], None]) -> RangeTest:
        """Drive the sweep (restarted once where it blew up at once) and return the test that counts.

        ``drive(test)`` runs training steps, recording each loss, until ``test.done`` (or until it must stop
        sooner: then it calls ``test.stop(reason)``); ``restore()`` puts the model and optimizer back as they were
        before the first step.
        """
        test = self._drive(drive, self.settings)
        if self.adaptive is None:
            return test
        if blew_up_at_once(test, self.adaptive):
            lower = restart_settings(self.settings, self.adaptive.restart_decades)
            self._record(restart_event(self.settings, test, lower), logging.WARNING)
            restore()
            test = self._drive(drive, lower)
        look = second_look_settings(test, self.adaptive)
        if look is not None:
            self._record(second_look_event(test, look), logging.INFO)
            restore()
            test = RangeTest(look)  # no continuation: the look is a narrower range under a known wall
            drive(test)
        return test

    def metadata(self, test: RangeTest) -> dict[str, Any]:
        """What the result records about the adaptive range (nothing for a fixed range): events, request, cost."""
        if self.adaptive is None:
            return {}
        return {
            "adaptive_range": self.events,
            "requested_range": [self.settings.min_lr, self.settings.max_lr],
            "total_steps": self._spent() + len(test.lrs),
        }

    def _drive(self, drive: Drive, settings: SweepSettings) -> RangeTest:
        continuation = self._continue_past_max_lr if self.adaptive is not None else None
        test = RangeTest(settings, continuation=continuation)
        drive(test)
        return test

    def _continue_past_max_lr(self, test: RangeTest) -> list[float]:
        """The test's continuation: where ``needs_extension``, the LRs past ``max_lr`` within the step cap."""
        if self.adaptive is None or not needs_extension(test, self.adaptive):
            return []
        room = MAX_TOTAL_STEPS_FACTOR * self.settings.num_training - self._spent() - len(test.lrs)
        more = extension_lrs(test.settings, self.adaptive.extend_decades, max_steps=room)
        if more:
            self._record(extension_event(test.settings, more), logging.INFO)
        return more

    def _spent(self) -> int:
        """Steps of sweeps thrown away by a restart."""
        return sum(int(event.get("steps", 0)) for event in self.events)

    def _record(self, event: dict[str, Any], level: int) -> None:
        self.events.append(event)
        log.log(level, "LR range test: %s.", event["reason"])
