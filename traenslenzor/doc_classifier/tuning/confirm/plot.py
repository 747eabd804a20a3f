"""The LR confirmation's picture: each candidate's validation loss over its steps, and final loss against LR.

Left: one line per trial, one colour per candidate; a candidate dropped at a rung ends there, the survivors go on
to the longer rungs (under OneCycle each rung trains from the start, so a rung's line starts again at step 0; a
continued run picks up where its rung before ended). Right: the last validation loss of every trial against its
LR, one marker per rung, with the finder's suggestion (and its band when it gave one) and the verdict's LR marked;
the title says whether the trials decided. Matplotlib is imported when a plot is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traenslenzor.doc_classifier.tuning.confirm.study import TrialRecord
    from traenslenzor.tuner import ConfirmPlan

_MARKERS = "os^Dv*"


def plot_confirmation(
    path: Path,
    plan: ConfirmPlan,
    trials: Sequence[TrialRecord],
    *,
    suggestion: float,
    confirmed: float,
    band: tuple[float, float] | None = None,
    decided: bool = True,
) -> Path:
    """Draw the study's ``trials`` (run under ``plan``) into the PNG ``path`` (its folder made when missing), with
    the finder's ``suggestion`` (and its ``band``) and the verdict's LR ``confirmed`` marked (``decided``: whether
    the trials decided, or the finder's LR was kept); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    figure, (curves, finals) = plt.subplots(1, 2, figsize=(12, 4.5))
    try:
        colours = {lr: plt.cm.viridis(i / max(1, len(plan.candidates) - 1))
                   for i, lr in enumerate(plan.candidates)}  # fmt: skip
        _draw_curves(curves, trials, colours)
        marks = {"suggestion": suggestion, "confirmed": confirmed, "band": band, "decided": decided}
        _draw_finals(finals, plan, trials, colours, marks)
        steps = sum(t.steps for t in trials)
        verdict = "confirmed" if decided else "not decided, keeping the finder's LR"
        figure.suptitle(
            f"LR confirmation: {confirmed:.2e}, {verdict} ({len(trials)} trials, {steps} steps = "
            f"{100 * steps / plan.planned_steps:.1f} % of {plan.planned_steps} planned)"
        )
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)
    return path


def _draw_curves(ax, trials: Sequence[TrialRecord], colours: dict) -> None:
    labelled: set[float] = set()
    for trial in trials:
        points = [(s, v) for s, v in trial.curve if math.isfinite(v)]
        label = None if trial.lr in labelled else f"{trial.lr:.2e}"
        labelled.add(trial.lr)
        if points:
            steps, losses = zip(*points, strict=True)
            ax.plot(steps, losses, marker=_MARKERS[trial.rung % len(_MARKERS)], ms=3, color=colours[trial.lr],
                    lw=1 + trial.rung, label=label)  # fmt: skip
        else:
            ax.plot([], [], color=colours[trial.lr], label=f"{label} (diverged)" if label else None)
    ax.set_xlabel("training step of the trial")
    ax.set_ylabel("validation loss")
    ax.set_yscale("log")
    ax.set_title("validation loss per candidate (thicker: later rung)")
    ax.legend(title="base LR", fontsize=8)


def _draw_finals(ax, plan: ConfirmPlan, trials: Sequence[TrialRecord], colours: dict, marks: dict) -> None:
    """The last loss of every trial against its LR; ``marks``: the finder's suggestion and band, the verdict's LR."""
    for rung, spec in enumerate(plan.rungs):
        members = sorted((t.lr, t.loss) for t in trials if t.rung == rung and math.isfinite(t.loss))
        if members:
            lrs, losses = zip(*members, strict=True)
            ax.plot(lrs, losses, marker=_MARKERS[rung % len(_MARKERS)], label=f"rung {rung + 1}: {spec.steps} steps")
    if marks["band"] is not None:
        ax.axvspan(*marks["band"], color="tab:orange", alpha=0.15, label="finder's band")
    ax.axvline(marks["suggestion"], color="tab:red", ls="--", label=f"finder: {marks['suggestion']:.2e}")
    label = "confirmed" if marks["decided"] else "not decided, kept"
    ax.axvline(marks["confirmed"], color="tab:green", label=f"{label}: {marks['confirmed']:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("base learning rate")
    ax.set_ylabel("final validation loss of the trial")
    ax.set_yscale("log")
    ax.set_title("final loss against LR")
    ax.legend(fontsize=8)
