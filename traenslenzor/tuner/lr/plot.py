"""Plot of an LR range test: loss against learning rate on a log axis, with the suggested LR as a red dot.

Reading it (see ``docs/lr_finder.md``): the loss is flat where the LR is too low, falls where training works, and
blows up where the LR is too high; a good LR sits where the loss still falls steeply, before the bottom. The faint
blue line is the raw per-step training loss. The solid line is the curve the suggestion was read from: for the
default rule (``wall``) the loss on the fixed probe batches (orange, its raw points faint) smoothed without lag
(centred, ``lr.wall.centred_smooth``), with the suggestion's band shaded; for the other rules the bias-corrected
EMA of the training loss (blue), which lags the raw loss by about ``1 / (1 - beta)`` steps.

matplotlib is imported inside the functions only, so that the tuner imports without it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from traenslenzor.tuner.lr.result import LRFinderResult

SUGGESTION_COLOR = "red"


def plot_lr_finder(
    result: LRFinderResult,
    suggest: bool = True,
    show: bool = False,
    ax: Axes | None = None,
    method: str | None = None,
) -> Figure:
    """Draw ``result`` and return the Figure.

    Args:
        result: the range test to draw.
        suggest: mark the suggested LR (rule ``method``, default rule if None) with a red dot.
        show: call ``plt.show()`` afterwards.
        ax: draw into these axes instead of a new figure.
        method: the suggestion rule to mark.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    else:
        fig = ax.figure
    lrs = list(result.lrs)
    read_lrs, read, raw = _read_curve(result, method)
    ax.plot(lrs, list(result.raw_losses), color="tab:blue", alpha=0.3, linewidth=1, label="training loss (raw)")
    if read is result.losses:
        ax.plot(lrs, list(read), color="tab:blue", linewidth=2, label="training loss (EMA, read)")
    else:
        if raw is not result.raw_losses:  # measured after every 2nd step: only the points that were measured
            measured = [(lr, v) for lr, v in zip(lrs, raw, strict=True) if math.isfinite(v)]
            ax.plot(*zip(*measured, strict=True), color="tab:orange", alpha=0.35, linewidth=1,
                    label="fixed-batch loss (raw)")  # fmt: skip
        label = "fixed-batch loss" if raw is not result.raw_losses else "training loss"
        ax.plot(read_lrs, read, color="tab:orange", linewidth=2, label=f"{label} (centred smoothing, read)")
    ax.set_xscale("log")
    ax.set_xlabel("Learning rate (log scale)")
    ax.set_ylabel("Loss")
    looked_again = any(e.get("action") == "second_look" for e in result.metadata.get("adaptive_range") or [])
    look = ", second look" if looked_again else ""
    ax.set_title(f"LR range test ({len(lrs)} steps{look}, stopped: {result.stop_reason or 'unknown'})")
    _limit_y(ax, list(read), list(raw))
    _mark_adaptive_range(ax, result)
    if suggest:
        _mark_suggestion(ax, result, method, read_lrs, read)
    ax.grid(True, which="both", alpha=0.3)
    if lrs:
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
    if show:
        plt.show()
    return fig


def _read_curve(result: LRFinderResult, method: str | None) -> tuple[list[float], list[float], tuple[float, ...]]:
    """(LRs, curve, its raw points) of what rule ``method`` reads: the EMA as recorded, or the raw curve the wall
    reading smooths (fixed-batch or training loss), smoothed here the same way, without lag."""
    import numpy as np

    from traenslenzor.tuner.lr.suggestion import READS_PROBE
    from traenslenzor.tuner.lr.wall import centred_smooth

    name, curve = result.curve_for(method)
    if name not in READS_PROBE:
        return list(result.lrs), curve, result.raw_losses  # type: ignore[return-value]
    keep = [i for i, (lr, v) in enumerate(zip(result.lrs, curve, strict=True)) if lr > 0 and math.isfinite(v)]
    if len(keep) < 3:
        return [], [], curve
    x = np.log10([result.lrs[i] for i in keep])
    smooth = centred_smooth(x, np.array([curve[i] for i in keep]))
    return [result.lrs[i] for i in keep], [float(v) for v in smooth], curve


def _mark_suggestion(
    ax: Axes, result: LRFinderResult, method: str | None, read_lrs: list[float], read: list[float]
) -> None:
    import numpy as np

    outcome = result.suggestion_outcome(method=method)
    if outcome.index is None or outcome.lr is None:
        ax.text(0.02, 0.02, f"no suggestion: {outcome.reason}", transform=ax.transAxes, fontsize=8, wrap=True)
        return
    lr = outcome.lr
    from traenslenzor.tuner.lr.suggestion import READS_PROBE

    if outcome.method in READS_PROBE and read_lrs:  # on the drawn curve, at the reading's own LR
        loss = float(np.interp(math.log10(lr), np.log10(read_lrs), read))
    else:
        loss = result.losses[outcome.index]
    from traenslenzor.tuner.lr.suggestion import DEFAULT_SUGGESTION

    label = f"suggested lr = {lr:.2e} ({outcome.method})"
    if outcome.method == "blend" and method is None:
        wall, stable = result.blend_parts()
        if wall is not None and stable is not None:
            label = f"suggested lr = {lr:.2e} (blend of wall {wall:.1e} and stable {stable:.1e})"
            for part in (wall, stable):
                ax.axvline(part, color=SUGGESTION_COLOR, alpha=0.5, linewidth=1, linestyle="--")
    if method is None or method == outcome.method:
        band = result.band if outcome.method == DEFAULT_SUGGESTION and method is None else None
        if band is not None:
            ax.axvspan(*band, color=SUGGESTION_COLOR, alpha=0.12, label=f"band {band[0]:.1e} .. {band[1]:.1e}")
    ax.plot(
        [lr],
        [loss],
        marker="o",
        markersize=10,
        linestyle="none",
        color=SUGGESTION_COLOR,
        zorder=3,
        label=label,
    )


def _mark_adaptive_range(ax: Axes, result: LRFinderResult) -> None:
    """A dotted line at the requested range's end that the sweep went past (``find_lr``'s adaptive range); the
    first look's fixed-batch curve, in grey, where a flat start was swept again."""
    events = result.metadata.get("adaptive_range") or []
    requested = result.metadata.get("requested_range")
    for event in events:
        if event.get("action") == "second_look":
            first = event["first_look"]
            measured = [(lr, v) for lr, v in zip(first["lr"], first["probe_loss"], strict=True) if v is not None]
            if measured:
                ax.plot(*zip(*measured, strict=True), color="gray", alpha=0.6, linewidth=1,
                        label="first look (flat: swept again, slower)")  # fmt: skip
        elif event.get("action") == "extend" and requested:
            ax.axvline(requested[1], color="gray", linestyle=":", label=f"requested max_lr = {requested[1]:.2e}")
        elif event.get("action") == "restart" and requested:
            ax.axvline(requested[0], color="gray", linestyle=":", label=f"requested min_lr = {requested[0]:.2e}")


def _limit_y(ax: Axes, smoothed: list[float], raw: list[float]) -> None:
    """Keep the y-axis on the informative part: from the lowest loss up to a little above the loss before the fall.

    The top is the highest smoothed loss up to the curve's lowest point (the start or the plateau), plus 15 % of
    the fall; the blow-up after it is cut off so that it does not flatten the plateau, fall and valley. A flat
    start (it fell by less than ``MIN_FALL`` of its level: a fine-tuned model after unfreezing, often) shows its
    level plus 1.5 x ``FLAT_WALL_RISE``, so that the rise the reading measures on such a curve is in view.
    """
    from traenslenzor.tuner.lr.wall import FLAT_WALL_RISE, MIN_FALL

    finite = [(i, v) for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        return
    bottom = min(finite, key=lambda item: item[1])[0]
    before = [v for i, v in finite if i <= bottom]
    low = min([*before, *(v for v in raw[: bottom + 1] if math.isfinite(v))])
    high = max(before)
    pad = 0.15 * (high - low) if high > low else max(abs(high) * 0.05, 1e-3)
    if high - low < MIN_FALL * abs(high):
        pad = max(pad, 1.5 * FLAT_WALL_RISE * abs(high))
    ax.set_ylim(low - 0.05 * (high - low), high + pad)
