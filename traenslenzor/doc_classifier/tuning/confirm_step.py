"""The tuning workflow's confirmation step: the LR step's value confirmed by training candidates
(``confirm/``), or the recorded confirmation reused while its triggers hold; the confirmed LR is applied."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from traenslenzor.doc_classifier.log import say
from traenslenzor.doc_classifier.tuning.batch_plan import BatchPlan
from traenslenzor.doc_classifier.tuning.confirm.trials import (
    ConfirmSetup,
    confirm_learning_rate,
    prepare_confirmation,
)
from traenslenzor.doc_classifier.tuning.record import Entry, new_entry
from traenslenzor.doc_classifier.tuning.steps import (
    LearningRateStep,
    TuningRun,
    apply_tuned_lr,
    reusable,
    reuse_note,
)
from traenslenzor.tuner import LRFinderResult


@dataclass(frozen=True)
class ConfirmStep:
    """The confirmation step: the LR confirmed by training (or reused from the record), applied over the suggestion."""

    suggestion: float
    learning_rate: float
    max_lr: float | None
    trials: int
    steps: int
    percent: float
    plot_path: str | None = None
    reused: bool = False
    entry: Entry | None = None  # the record's new entry, when the study ran


def _finder_curve(run: TuningRun, lr_step: LearningRateStep) -> LRFinderResult | None:
    """The range test behind ``lr_step``'s LR (searched now or recorded); None when the LR was rescaled from it."""
    entry = lr_step.entry or run.record.get("learning_rate")
    raw = None if entry is None else entry.details.get("result")
    if raw is None or entry.values.get("learning_rate") != lr_step.learning_rate:
        return None  # a curve read at another global batch says nothing of this one's wall
    try:
        return LRFinderResult.from_dict(raw)
    except (TypeError, ValueError):
        return None


def confirm_step(run: TuningRun, plan: BatchPlan, lr_step: LearningRateStep) -> ConfirmStep:
    """Confirm the LR step's value by training candidates (``confirm/trials.py``), or reuse the recorded confirmation
    while its triggers hold; apply its LR (the finder's when the trials did not decide) and OneCycle's peak."""
    suggestion = float(lr_step.learning_rate)
    setup = prepare_confirmation(
        run.config, run.datamodule, suggestion=suggestion, finder_result=_finder_curve(run, lr_step),
        accumulation=plan.accumulation, model=run.model, phase=run.phase.start,
    )  # fmt: skip
    recorded = reusable(run.record.get("lr_confirm"), setup.fingerprint, "confirmed learning rate", retune=run.retune)
    entry = None
    if recorded is not None:
        values = recorded.values
        reuse_note("confirmed learning rate", f"{values['learning_rate']:.2e}", run.record_path, recorded)
    else:
        values, entry = _run_confirmation(run, plan, setup, suggestion)
    lr = float(values["learning_rate"])
    _say_verdict(lr, values)
    max_lr, _ = apply_tuned_lr(run, suggestion, lr, run.module.config.optimizer.weight_decay)
    return ConfirmStep(
        suggestion, lr, max_lr, values["trials"], values["steps"], values["percent"], values.get("plot"),
        reused=recorded is not None, entry=entry,
    )  # fmt: skip


def _run_confirmation(run: TuningRun, plan: BatchPlan, setup: ConfirmSetup, suggestion: float) -> tuple[dict, Entry]:
    """Run the study (or nothing, when the budget was refused); the record's values and its new entry."""
    values = {"suggestion": suggestion, "global_batch": plan.global_batch, "trials": 0, "steps": 0, "percent": 0.0}
    if setup.plan is None:
        values |= {"learning_rate": suggestion, "decided": False, "reason": setup.refused, "study": ""}
        return values, new_entry(values, setup.fingerprint, {"plan": None, "trials": []})
    outcome = confirm_learning_rate(run.config, run.module, run.datamodule, setup, fresh=run.retune)
    verdict = outcome.verdict
    values |= {
        "learning_rate": verdict.learning_rate, "decided": verdict.decided, "reason": verdict.reason,
        "start_loss": outcome.start_loss, "trials": len(outcome.trials),
        "steps": outcome.steps, "percent": outcome.percent, "plot": str(outcome.plot), "study": outcome.study_name,
        "database": str(outcome.database), "planned_steps": setup.plan.planned_steps,
    }  # fmt: skip
    if verdict.improvement is not None:  # none when a trial diverged; a None value would block the record's reuse
        values["improvement"] = verdict.improvement
    trials = [{"lr": t.lr, "rung": t.rung, "loss": t.loss, "steps": t.steps} for t in outcome.trials]
    say("  LR confirmation plot saved to: %s (study %s in %s)", outcome.plot, outcome.study_name, outcome.database)
    return values, new_entry(values, setup.fingerprint, {"plan": setup.plan.to_dict(), "trials": trials})


def _say_verdict(lr: float, values: dict) -> None:
    """The verdict's line: confirmed (with why), or not decided and the finder's LR kept (a warning, with why)."""
    if values.get("decided", True):
        say(
            "✓ Confirmed learning rate: %.2e (%s; %d trials, %d training steps = %.1f %% of the planned training)",
            lr, values.get("reason", "the trials' best"), values["trials"], values["steps"], values["percent"],
        )  # fmt: skip
    elif values["trials"] == 0:
        say("Learning rate not decided, keeping the finder's LR %.2e: %s", lr, values["reason"], level=logging.WARNING)
    else:
        say(
            "Learning rate not decided, keeping the finder's LR %.2e: %s (%d trials, %d training steps = %.1f %% of "
            "the planned training)", lr, values["reason"], values["trials"], values["steps"], values["percent"],
            level=logging.WARNING,
        )  # fmt: skip
