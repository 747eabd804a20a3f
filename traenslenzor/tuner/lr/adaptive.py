"""The adaptive range of ``find_lr``: widen the sweep where the curve shows no edge (issue 11.2).

A range test can only read an LR out of a curve that shows where training breaks. Two cases do not:

* **The loss never turned up before max_lr** (neither the smoothed nor the raw loss rose again): the best LR may
  lie beyond the range. The sweep then *continues* from the current state at the same step ratio, up to
  ``extend_decades`` past ``max_lr``, until it diverges or reaches that cap.
* **The loss blew up at once** (within the first quarter of the steps, from a finite first loss): ``min_lr`` is
  already too high. The state is restored and the sweep *restarts* ``restart_decades`` below ``min_lr`` (once).

``find_lr`` records both in the result (``metadata["adaptive_range"]``) and logs them. Both sweep loops (``find_lr``
and the Lightning adapter) call the same two steps: ``extend_past_max_lr`` when their sweep completes, and
``sweep_with_restart`` around a whole sweep; the pure decisions under them (``needs_extension``,
``blew_up_at_once``, ...) stay callable on their own. Cost: an extension adds
``extend_decades`` worth of steps (24 at the default sweep), a restart at most a quarter of ``num_training`` plus
one full sweep; the total stays under 3 x ``num_training``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from traenslenzor.tuner.lr.curve import never_turned_up
from traenslenzor.tuner.lr.settings import StopReason, SweepSettings
from traenslenzor.tuner.lr.sweep import RangeTest


@dataclass(frozen=True)
class AdaptiveRange:
    """How far ``find_lr`` may widen the sweep; ``find_lr(adaptive_range=None)`` keeps the range fixed.

    Attributes:
        extend_decades: how far past ``max_lr`` the sweep may continue when the loss never turned up (0: never).
        restart_decades: how far below ``min_lr`` the one restart begins when the loss blew up at once (0: never).
        early_fraction: a blow-up within this share of ``num_training`` counts as "at once".
    """

    extend_decades: float = 2.0
    restart_decades: float = 3.0
    early_fraction: float = 0.25

    def __post_init__(self) -> None:
        for name in ("extend_decades", "restart_decades"):
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


def extension_lrs(settings: SweepSettings, decades: float) -> list[float]:
    """The LRs that continue an exponential sweep past ``max_lr`` at its own step ratio, up to ``decades`` more.

    Empty for a linear sweep (its steps are too fine to cover decades) or ``decades == 0``.
    """
    if settings.mode != "exponential" or decades <= 0:
        return []
    step = math.log10(settings.max_lr / settings.min_lr) / (settings.num_training - 1)  # decades per step
    count = max(1, math.floor(decades / step + 1e-9))  # the cap stays within `decades`
    return [settings.max_lr * 10 ** (step * i) for i in range(1, count + 1)]


def restart_settings(settings: SweepSettings, decades: float) -> SweepSettings:
    """The same sweep, started ``decades`` below ``min_lr``."""
    return replace(settings, min_lr=settings.min_lr / 10**decades)


def extension_event(settings: SweepSettings, more: list[float]) -> dict[str, object]:
    """The record (and log line) of a sweep continued past ``max_lr`` to ``more[-1]``."""
    return {
        "action": "extend",
        "reason": f"the loss never turned up before max_lr={settings.max_lr:.2e}; continued the sweep from the "
        f"current state up to {more[-1]:.2e} ({len(more)} more steps at most)",
        "cap": more[-1],
    }


def restart_event(settings: SweepSettings, test: RangeTest, lower: SweepSettings) -> dict[str, object]:
    """The record (and log line) of a sweep that blew up at once and restarts at ``lower.min_lr``."""
    return {
        "action": "restart",
        "reason": f"the loss blew up after {len(test.lrs)} of {settings.num_training} steps "
        f"(at lr={test.lrs[-1]:.2e}): min_lr={settings.min_lr:.2e} was already too high; "
        f"restarted at {lower.min_lr:.2e} from the restored state",
        "steps": len(test.lrs),
    }


def adaptive_metadata(settings: SweepSettings, events: list[dict[str, object]], test: RangeTest) -> dict[str, object]:
    """What a result records about its adaptive range: the events, the range asked for, the steps spent in all."""
    spent = sum(int(event.get("steps", 0)) for event in events)  # type: ignore[call-overload]
    return {
        "adaptive_range": events,
        "requested_range": [settings.min_lr, settings.max_lr],
        "total_steps": spent + len(test.lrs),
    }


def extend_past_max_lr(
    test: RangeTest, adaptive: AdaptiveRange, events: list[dict[str, object]], log: logging.Logger
) -> bool:
    """Where ``needs_extension``, extend ``test`` past ``max_lr`` (logged, recorded in ``events``); whether it did.

    The caller then drives the extended ``test`` on from its current state, as it drove the sweep so far.
    """
    more = extension_lrs(test.settings, adaptive.extend_decades) if needs_extension(test, adaptive) else []
    if not more:
        return False
    events.append(extension_event(test.settings, more))
    log.info("LR range test: %s.", events[-1]["reason"])
    test.extend(more)
    return True


def sweep_with_restart(
    run: Callable[[SweepSettings], RangeTest],
    settings: SweepSettings,
    adaptive: AdaptiveRange | None,
    events: list[dict[str, object]],
    restore: Callable[[], None],
    log: logging.Logger,
) -> RangeTest:
    """``run(settings)``; where it ``blew_up_at_once``, ``restore()`` the state and run once from below ``min_lr``."""
    test = run(settings)
    if adaptive is not None and blew_up_at_once(test, adaptive):
        lower = restart_settings(settings, adaptive.restart_decades)
        events.append(restart_event(settings, test, lower))
        log.warning("LR range test: %s.", events[-1]["reason"])
        restore()
        test = run(lower)
    return test
