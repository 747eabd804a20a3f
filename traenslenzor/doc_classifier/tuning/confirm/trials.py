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
  the LR and OneCycle's peak in ``hparams`` only for its own fit: nothing leaks into the real training.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from traenslenzor.doc_classifier.config import ConfigError, ExperimentConfig
from traenslenzor.doc_classifier.log import is_rank_zero, say
from traenslenzor.doc_classifier.training.trainer import build_trial_trainer
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
from traenslenzor.doc_classifier.tuning.record import Fingerprint, lr_fingerprint
from traenslenzor.tuner import (
    DEFAULT_CONFIRM_MARGIN,
    ConfirmPlan,
    Rung,
    TrialsTooShort,
    Verdict,
    decide,
    finder_band,
    finder_wall,
    plan_confirmation,
    preserved_training_state,
    survivors,
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
VALIDATIONS_PER_TRIAL = 4  # points of each trial's validation curve (the last one at its final step)


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


# --- one trial with Lightning --------------------------------------------------------------------------------------


class _TrialWatch(Callback):
    """Records the validation loss after every validation, and stops a fit whose training loss is not finite."""

    def __init__(self) -> None:
        self.curve: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/loss")
        loss = float(value) if value is not None else math.inf
        self.curve.append((trainer.global_step, loss if math.isfinite(loss) else math.inf))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            trainer.should_stop = True  # diverged: the rest of the trial would measure nothing


class OptimizerCarry(Callback):
    """Carries the optimizer's state from a trial's end to the start of its continuation (constant-LR rungs):
    ``state`` is loaded into the new fit's optimizer when given, and replaced by the optimizer's state at the end."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state = state

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.state is not None:
            trainer.optimizers[0].load_state_dict(self.state)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.state = copy.deepcopy(trainer.optimizers[0].state_dict())


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-Trainer notes ("GPU available", ...) once per trial would bury the tuner's lines."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def train_trial(
    config: ExperimentConfig,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    *,
    lr: float,
    steps: int,
    accumulation: int,
    carry: OptimizerCarry | None = None,
) -> TrialCurve:
    """Fit ``module`` for ``steps`` optimizer steps at base LR ``lr`` (OneCycle peak ``max_lr_factor x lr``,
    spanning those steps), validating ``VALIDATIONS_PER_TRIAL`` times; ``carry`` loads and keeps the optimizer's
    state (a continued run). The caller restores the module."""
    module.hparams.learning_rate = lr
    module.hparams.max_lr = config.onecycle_max_lr(lr)
    watch = _TrialWatch()
    interval = max(1, steps // VALIDATIONS_PER_TRIAL) * accumulation  # in training batches
    callbacks: list[Callback] = [watch] if carry is None else [watch, carry]
    trainer = build_trial_trainer(
        config, max_steps=steps, accumulate_grad_batches=accumulation, val_check_interval=interval, callbacks=callbacks
    )
    trainer.fit(module, datamodule=datamodule)
    if not watch.curve or watch.curve[-1][0] != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    loss = watch.curve[-1][1] if watch.curve else math.inf
    return TrialCurve(tuple(watch.curve), loss, int(trainer.global_step))


def start_loss(config: ExperimentConfig, module: L.LightningModule, datamodule: L.LightningDataModule) -> float:
    """The validation loss every trial starts from (the verdict's reference: did any trial move it?)."""
    trainer = build_trial_trainer(config, max_steps=0, accumulate_grad_batches=1, val_check_interval=1, callbacks=[])
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)
    value = metrics[0].get("val/loss") if metrics else None
    return float(value) if value is not None and math.isfinite(float(value)) else math.inf


class _Runs:
    """The trials' training: each from the restored start, or -- a continued rung -- from the candidate's own run of
    the rung before (its weights and optimizer state, kept in memory only while it can still survive). A continued
    trial whose run is not in memory (completed by an interrupted earlier run) trains its whole length again."""

    def __init__(self, plan: ConfirmPlan, module: L.LightningModule, restore: Callable[[], None], train: Callable):
        self.plan, self.module, self.restore, self.train = plan, module, restore, train
        self.ends: dict[float, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.losses: dict[int, dict[float, float]] = {}

    def __call__(self, lr: float, rung: Rung) -> TrialCurve:
        index = self.plan.rungs.index(rung)
        end = self.ends.pop(lr, None) if rung.continued else None
        self.restore()
        if end is None:
            steps, offset, carry = rung.steps, 0, OptimizerCarry()
        else:
            self.module.load_state_dict(end[0])
            steps, offset, carry = rung.trained, rung.previous, OptimizerCarry(end[1])
        result = self.train(lr, steps, carry)
        curve = tuple((offset + step, loss) for step, loss in result.curve)
        self._keep(index, lr, result.loss, carry)
        return TrialCurve(curve, result.loss, result.steps)

    def _keep(self, index: int, lr: float, loss: float, carry: OptimizerCarry) -> None:
        """Keep this run's end when the next rung continues runs, then drop the ends that can no longer survive."""
        rungs = self.plan.rungs
        if index + 1 >= len(rungs) or not rungs[index + 1].continued:
            return
        losses = self.losses.setdefault(index, {})
        losses[lr] = loss
        if math.isfinite(loss) and carry.state is not None:
            weights = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            self.ends[lr] = (weights, carry.state)
        alive = set(survivors(losses, rungs[index + 1].trials, self.plan.incumbent))
        self.ends = {k: v for k, v in self.ends.items() if k in alive}


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
    """Open (or resume) the study, run the rungs (restarted or continued runs, see :class:`_Runs`), judge the last
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

    with _restored(module) as restore, _progress(plan, config) as progress, _quiet_lightning():
        start = start_loss(config, module, datamodule)
        losses, trials = run_rungs(study, plan, _Runs(plan, module, restore, train), progress)
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
