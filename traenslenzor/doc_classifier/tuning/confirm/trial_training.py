"""One trial of the LR confirmation as a Lightning fit, and the runs the trials train: restarted or continued.

A trial fits the user's own model, optimizer, batch and accumulation for a rung's optimizer steps at one candidate
LR, with OneCycle (when the run uses it) compressed to those steps; it validates ``VALIDATIONS_PER_TRIAL`` times and
stops early when its training loss is not finite. ``TrialRuns`` starts each trial from the restored start, or --
under a constant LR -- continues a survivor's own run of the rung before, its weights and optimizer state kept in
memory only while it can still survive. Which trials run is the study's business (``study.py``); setting them up,
judging them and plotting them is the confirmation's (``trials.py``).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from traenslenzor.doc_classifier.config import ExperimentConfig
from traenslenzor.doc_classifier.training.trainer import build_trial_trainer
from traenslenzor.doc_classifier.tuning.confirm.study import TrialCurve
from traenslenzor.tuner import ConfirmPlan, Rung, survivors

VALIDATIONS_PER_TRIAL = 4  # points of each trial's validation curve (the last one at its final step)


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
def quiet_lightning() -> Iterator[None]:
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


class TrialRuns:
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
