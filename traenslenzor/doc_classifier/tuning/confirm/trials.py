"""Confirming the finder's LR by training: a short Optuna study over candidates, at the user's schedule.

After the LR finder (or from its reused result), a few candidate LRs from its band -- the finder's own LR among
them -- are trained with the user's own model, optimizer, batch size, accumulation and schedule, and scored on
validation loss. Successive halving keeps the best ones (and the finder's LR) for longer trials: under OneCycle
each trial restarts from the same restored start with the cycle compressed to its steps; under a constant LR a
survivor continues its own run (weights and optimizer state kept in memory). The last rung's verdict
(``traenslenzor.tuner.decide``) replaces the finder's LR only when a candidate beat it by a margin; otherwise it
is "not decided" and the finder's LR is kept. The candidates, the rungs and the verdict are the core's pure
decisions (``traenslenzor.tuner.plan_confirmation``, ``decide``); this module runs them:

* the study lives in Optuna's SQLite storage, ``<log dir>/lr_confirm.db``, one study per fingerprint of what the
  answer depends on (the LR's triggers of ``tuning/record.py``, the suggestion, the plan, the schedule); each
  trial is one (candidate, rung) training, its validation curve reported step by step. Which trials run is
  decided by the rung schedule (synchronous successive halving), not by Optuna's asynchronous pruner: run one
  after another, that pruner promotes every early trial and compares LRs mid-schedule (docs/cli.md);
* a run that stopped (Ctrl-C, a crash) left its trial RUNNING (or FAILED): the next run marks it failed and
  trains it again; completed trials are never trained twice. A file that is not an Optuna database is one
  clear error (exit 2), and is never changed or deleted;
* every trial starts from a snapshot of the model's weights and the RNGs (restored after the study too), and sets
  the LR and OneCycle's peak in ``hparams`` only for its own fit: nothing leaks into the real training. The fit
  itself, and the runs a continued rung carries on, are ``trial_training.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L

from traenslenzor.doc_classifier.config import ConfigError, ExperimentConfig
from traenslenzor.doc_classifier.log import is_rank_zero, say
from traenslenzor.doc_classifier.tuning.confirm.plot import plot_confirmation
from traenslenzor.doc_classifier.tuning.confirm.study import (
    ConfirmStudyError,
    TrialCurve,
    TrialRecord,
    check_database,
    fail_interrupted,
    open_study,
    run_rungs,
)
from traenslenzor.doc_classifier.tuning.confirm.trial_training import (
    OptimizerCarry,
    TrialRuns,
    quiet_lightning,
    start_loss,
    train_trial,
)
from traenslenzor.doc_classifier.tuning.record import Fingerprint, lr_fingerprint
from traenslenzor.tuner import (
    DEFAULT_CONFIRM_MARGIN,
    ConfirmPlan,
    TrialsTooShort,
    Verdict,
    decide,
    finder_band,
    finder_wall,
    plan_confirmation,
    preserved_training_state,
)

__all__ = [
    "DATABASE_NAME",
    "ConfirmOutcome",
    "ConfirmSetup",
    "ConfirmStudyError",
    "TrialCurve",
    "TrialRecord",
    "check_database",
    "confirm_learning_rate",
    "prepare_confirmation",
]

DATABASE_NAME = "lr_confirm.db"
PLOT_NAME = "lr_confirm_plot.png"


@dataclass(frozen=True)
class ConfirmOutcome:
    """The verdict (the LR to train with, decided or not), the plan, every trial, and what it cost."""

    verdict: Verdict
    suggestion: float
    plan: ConfirmPlan
    trials: tuple[TrialRecord, ...]
    study_name: str
    database: Path
    band: tuple[float, float] | None = None
    plot: Path | None = None
    start_loss: float | None = None  # the validation loss every trial started from

    @property
    def learning_rate(self) -> float:
        return self.verdict.learning_rate

    @property
    def steps(self) -> int:
        return sum(t.steps for t in self.trials)

    @property
    def percent(self) -> float:
        return 100 * self.steps / self.plan.planned_steps

    @property
    def ran(self) -> int:
        """Trials trained by this run (the others were completed by an earlier, interrupted one)."""
        return sum(not t.reused for t in self.trials)


# --- what the study depends on -------------------------------------------------------------------------------------


def planned_steps(config: ExperimentConfig, train_batches: int, accumulation: int) -> int:
    """Optimizer steps of the planned training (what OneCycle spans): epochs x steps per epoch, capped by
    ``max_steps``; ``train_batches`` is the length of the training loader."""
    tc = config.trainer_config
    limit = tc.limit_train_batches
    batches = min(train_batches, int(limit)) if isinstance(limit, int) else int(train_batches * limit)
    per_epoch = math.ceil(batches / accumulation)
    epochs = per_epoch * tc.max_epochs if tc.max_epochs > 0 else math.inf
    steps = min(epochs, tc.max_steps if tc.max_steps > 0 else math.inf)
    if not math.isfinite(steps) or steps < 1:
        raise ConfigError(
            "--confirm-learning-rate needs a planned training of finite length: set trainer_config.max_epochs or "
            "max_steps (its budget is a share of it)."
        )
    return int(steps)


def confirm_fingerprint(
    config: ExperimentConfig,
    model: dict[str, Any],
    *,
    suggestion: float,
    plan: ConfirmPlan | str,
    global_batch: int,
    phase: dict[str, Any] | None = None,
) -> Fingerprint:
    """The LR's triggers (``lr_fingerprint``, and ``phase``: the start of fine-tuning's whole-model phase, as its LR
    step records it) and what the trials depend on besides: a change starts a new study. ``plan``: the plan, or the
    reason none could be made (a budget too small)."""
    tc, dm = config.trainer_config, config.datamodule_config
    return {
        **lr_fingerprint(config, model),
        **({"phase": phase} if phase else {}),  # the head-trained start the trials train from
        "confirmation": {
            "suggestion": float(f"{suggestion:.6e}"),
            "plan": plan if isinstance(plan, str) else plan.to_dict(),
            "margin": DEFAULT_CONFIRM_MARGIN,
            "global batch": global_batch,
            "schedule": config.module_config.scheduler.model_dump(mode="json", exclude={"max_lr"}),
            "max_lr_factor": config.tuner_config.max_lr_factor,
            "trainer": {k: getattr(tc, k) for k in ("precision", "gradient_clip_val", "limit_val_batches")},
            "validation": {"size": dm.synthetic_val_size, "limit_val_samples": dm.limit_val_samples},
            "seed": config.seed,
        },
    }


def study_name(fingerprint: Fingerprint) -> str:
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return "lr_confirm-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- the confirmation ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfirmSetup:
    """What a confirmation will run, known before it runs: the plan (None: refused, ``refused`` says why), its
    fingerprint and the study's name."""

    suggestion: float
    plan: ConfirmPlan | None
    fingerprint: Fingerprint
    study_name: str
    database: Path
    band: tuple[float, float] | None
    accumulation: int
    refused: str | None = None  # first-rung trials too short to say anything: the finder's LR is kept


def prepare_confirmation(
    config: ExperimentConfig,
    datamodule: L.LightningDataModule,
    *,
    suggestion: float,
    finder_result: Any,
    accumulation: int,
    model: dict[str, Any],
    phase: dict[str, Any] | None = None,
) -> ConfirmSetup:
    """The plan (candidates from ``finder_result``'s band, below its wall; None: the lattice window alone; runs
    continue under a constant LR, restart under OneCycle) and the study it belongs to. ``model`` is the tuning
    record's model trigger, ``phase`` the start of the phase the LR is for (``LRPhase.start``; none in one phase).
    A budget whose first-rung trials would be too short gives a refused setup (no plan).

    Raises:
        ConfigError: bad confirm settings, or a training of no finite length.
    """
    tc = config.tuner_config
    planned = planned_steps(config, len(datamodule.train_dataloader()), accumulation)
    band = None if finder_result is None else finder_band(finder_result)
    wall = None if finder_result is None else finder_wall(finder_result)
    continued = config.module_config.scheduler.name == "none"  # a constant LR: survivors continue their runs
    plan: ConfirmPlan | None = None
    refused = None
    try:
        plan = plan_confirmation(
            suggestion, planned, budget=tc.confirm_budget, count=tc.confirm_candidates, band=band, wall=wall,
            continued=continued,
        )  # fmt: skip
    except TrialsTooShort as exc:
        refused = str(exc)
    except ValueError as exc:
        raise ConfigError(f"tuner_config.confirm_budget / confirm_candidates: {exc}") from None
    global_batch = int(datamodule.hparams.batch_size) * accumulation
    fingerprint = confirm_fingerprint(
        config, model, suggestion=suggestion, plan=plan or f"refused: {refused}", global_batch=global_batch,
        phase=phase,
    )  # fmt: skip
    database = tc.plot_path.parent / DATABASE_NAME
    name = study_name(fingerprint)
    return ConfirmSetup(suggestion, plan, fingerprint, name, database, band, accumulation, refused)


def confirm_learning_rate(
    config: ExperimentConfig,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    setup: ConfirmSetup,
    *,
    fresh: bool = False,
) -> ConfirmOutcome:
    """Open (or resume) the study, run the rungs (restarted or continued runs, see :class:`TrialRuns`), judge the last
    rung against the finder's LR and the start's validation loss, and plot; applies nothing.

    ``fresh`` drops the study's earlier trials first (``--retune``).
    """
    plan = setup.plan
    if plan is None:
        raise ValueError(f"a refused confirmation has no trials to run: {setup.refused}")
    study = open_study(setup.database, setup.study_name, fresh=fresh)
    study.set_user_attr("plan", plan.to_dict())
    study.set_user_attr("suggestion", setup.suggestion)
    fail_interrupted(study)
    say("Confirming the learning rate: %d candidates %s", len(plan.candidates), _describe_plan(plan))

    def train(lr: float, steps: int, carry: OptimizerCarry) -> TrialCurve:
        return train_trial(config, module, datamodule, lr=lr, steps=steps, accumulation=setup.accumulation, carry=carry)

    with _restored(module) as restore, _progress(plan, config) as progress, quiet_lightning():
        start = start_loss(config, module, datamodule)
        losses, trials = run_rungs(study, plan, TrialRuns(plan, module, restore, train), progress)
    verdict = decide(losses, setup.suggestion, margin=DEFAULT_CONFIRM_MARGIN, start_loss=start)
    study.set_user_attr("confirmed_lr", verdict.learning_rate)
    study.set_user_attr("verdict", verdict.to_dict())
    outcome = ConfirmOutcome(
        verdict, setup.suggestion, plan, trials, setup.study_name, setup.database, setup.band, start_loss=start
    )
    plot = setup.database.parent / PLOT_NAME
    if is_rank_zero():
        plot_confirmation(
            plot, plan, trials, suggestion=setup.suggestion, confirmed=verdict.learning_rate, band=setup.band,
            decided=verdict.decided,
        )  # fmt: skip
    return replace(outcome, plot=plot)


def _describe_plan(plan: ConfirmPlan) -> str:
    lrs = ", ".join(f"{lr:.2e}" + (" (finder)" if lr == plan.incumbent else "") for lr in plan.candidates)
    rungs = " -> ".join(f"{r.trials} x {r.steps} steps" for r in plan.rungs)
    how = "survivors continue their runs (constant LR)" if plan.continued else "each rung restarts (OneCycle)"
    return f"({lrs}); rungs {rungs}, {how}, at most {plan.cost} of {plan.planned_steps} planned steps"


@contextmanager
def _restored(module: L.LightningModule) -> Iterator[Callable[[], None]]:
    """The module's weights, modes, RNGs and LR hyper-parameters, restored on demand and when the block ends."""
    saved = {key: module.hparams[key] for key in ("learning_rate", "max_lr")}
    try:
        with preserved_training_state(module) as state:
            yield state.restore
    finally:
        module.hparams.update(saved)


@contextmanager
def _progress(plan: ConfirmPlan, config: ExperimentConfig) -> Iterator[Any]:
    from tqdm.auto import tqdm

    enabled = config.trainer_config.enable_progress_bar and is_rank_zero()
    bar = tqdm(total=plan.trials, desc="Confirming LR (trials)", unit="trial", disable=not enabled, leave=False)
    try:
        yield bar
    finally:
        bar.close()
