"""The LR confirmation's picture: each candidate's validation loss over its steps, and final loss against LR.

Left: one line per trial, one colour per candidate; a candidate dropped at a rung ends there, the survivors go on
to the longer rungs (each rung trains from the start, so a rung's line starts again at step 0). Right: the last
validation loss of every trial against its LR, one marker per rung, with the finder's suggestion (and its band
when it gave one) and the confirmed LR marked. Matplotlib is imported when a plot is drawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traenslenzor.doc_classifier.tuning.confirm.trials import ConfirmOutcome

_MARKERS = "os^Dv*"


def plot_confirmation(outcome: ConfirmOutcome, path: Path) -> Path:
    """Draw ``outcome`` into the PNG ``path`` (its folder made when missing); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    figure, (curves, finals) = plt.subplots(1, 2, figsize=(12, 4.5))
    try:
        colours = {lr: plt.cm.viridis(i / max(1, len(outcome.plan.candidates) - 1))
                   for i, lr in enumerate(outcome.plan.candidates)}  # fmt: skip
        _draw_curves(curves, outcome, colours)
        _draw_finals(finals, outcome, colours)
        figure.suptitle(
            f"LR confirmation: {outcome.learning_rate:.2e} ({len(outcome.trials)} trials, {outcome.steps} steps = "
            f"{outcome.percent:.1f} % of {outcome.plan.planned_steps} planned)"
        )
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)
    return path


def _draw_curves(ax, outcome: ConfirmOutcome, colours: dict) -> None:
    labelled: set[float] = set()
    for trial in outcome.trials:
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


def _draw_finals(ax, outcome: ConfirmOutcome, colours: dict) -> None:
    for rung, spec in enumerate(outcome.plan.rungs):
        members = sorted((t.lr, t.loss) for t in outcome.trials if t.rung == rung and math.isfinite(t.loss))
        if members:
            lrs, losses = zip(*members, strict=True)
            ax.plot(lrs, losses, marker=_MARKERS[rung % len(_MARKERS)], label=f"rung {rung + 1}: {spec.steps} steps")
    if outcome.band is not None:
        ax.axvspan(*outcome.band, color="tab:orange", alpha=0.15, label="finder's band")
    ax.axvline(outcome.suggestion, color="tab:red", ls="--", label=f"finder: {outcome.suggestion:.2e}")
    ax.axvline(outcome.learning_rate, color="tab:green", label=f"confirmed: {outcome.learning_rate:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("base learning rate")
    ax.set_ylabel("final validation loss of the trial")
    ax.set_yscale("log")
    ax.set_title("final loss against LR")
    ax.legend(fontsize=8)
