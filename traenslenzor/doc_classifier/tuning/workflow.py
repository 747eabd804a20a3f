"""The tuning workflow: batch size first, then the LR range test (Smith 2015/2017), then apply both.

Order matters: the best LR depends on the batch size, so the batch size is always tuned first, whatever the order
of the CLI flags. After the LR step the module's ``hparams.learning_rate`` holds the LR and ``hparams.max_lr``
(OneCycle's peak) ``max_lr_factor`` x it.

``run_tuning`` is a sequence of steps, each returning a typed value (``steps.py``: ``batch_size_step``,
``batch_plan_step``, ``learning_rate_step``; ``confirm_step.py``: ``confirm_step``), then ``save_record`` writes the
entries of the searches that ran; ``TuningOutcome.from_steps`` puts them together.

Under DDP every rank runs this workflow with the same inputs and so takes the same decisions; the log lines, the
plot and the record are written by rank 0 only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L

from traenslenzor.doc_classifier.config import ExperimentConfig
from traenslenzor.doc_classifier.log import is_rank_zero, say
from traenslenzor.doc_classifier.training.trainer import build_tuning_trainer
from traenslenzor.doc_classifier.tuning.batch_plan import BatchPlan
from traenslenzor.doc_classifier.tuning.confirm_step import ConfirmStep, confirm_step
from traenslenzor.doc_classifier.tuning.record import load_record, model_trigger, write_record
from traenslenzor.doc_classifier.tuning.steps import (
    ONE_PHASE,
    BatchSizeStep,
    LearningRateStep,
    LRPhase,
    TuningRun,
    batch_plan_step,
    batch_size_step,
    learning_rate_step,
)


@dataclass(frozen=True)
class TuningOutcome:
    """What tuning found (or reused) and applied; ``None`` for what was not tuned (or not found)."""

    batch_size: int | None = None  # per process
    accumulate_grad_batches: int = 1
    world_size: int = 1
    learning_rate: float | None = None
    previous_learning_rate: float | None = None
    max_lr: float | None = None
    weight_decay: float | None = None  # set when the LR rescale moved AdamW's weight decay
    plot_path: str | None = None
    results_path: str | None = None
    diagnostics: tuple[str, ...] = field(default_factory=tuple)
    reused: tuple[str, ...] = ()  # "batch_size", "learning_rate", "lr_confirm": taken from the record
    suggested_learning_rate: float | None = None  # the finder's, when a confirmation replaced it
    confirm_plot_path: str | None = None

    @property
    def global_batch(self) -> int | None:
        return None if self.batch_size is None else self.batch_size * self.world_size * self.accumulate_grad_batches

    @classmethod
    def from_steps(
        cls,
        plan: BatchPlan,
        lr: LearningRateStep | None,
        *,
        reused: tuple[str, ...] = (),
        results_path: Path | None = None,
        confirmation: ConfirmStep | None = None,
    ) -> TuningOutcome:
        """The outcome of a run: the batch ``plan`` it settled on, its LR step (None: the LR was not tuned) and the
        confirmation that replaced the LR step's value (None: none ran)."""
        lr = lr if lr is not None else LearningRateStep(previous_learning_rate=None)
        confirmed = confirmation is not None
        return cls(
            batch_size=plan.per_process,
            accumulate_grad_batches=plan.accumulation,
            world_size=plan.world_size,
            learning_rate=confirmation.learning_rate if confirmed else lr.learning_rate,
            previous_learning_rate=lr.previous_learning_rate,
            max_lr=confirmation.max_lr if confirmed else lr.max_lr,
            suggested_learning_rate=lr.learning_rate if confirmed else None,
            confirm_plot_path=confirmation.plot_path if confirmed else None,
            weight_decay=lr.weight_decay,
            plot_path=lr.plot_path,
            results_path=None if results_path is None else str(results_path),
            diagnostics=lr.diagnostics,
            reused=reused,
        )


def save_record(run: TuningRun, steps: dict[str, BatchSizeStep | LearningRateStep | ConfirmStep]) -> Path | None:
    """Write the record with the entries of the searches that ran (rank 0); its path, or None when none ran."""
    searched = {name: step.entry for name, step in steps.items() if step.entry is not None}
    if not searched:
        return None
    if is_rank_zero():
        write_record(run.record_path, {**run.record, **searched})
    say("  Tuning results saved to: %s", run.record_path)
    return run.record_path


# --- the workflow --------------------------------------------------------------------------------------------------


def run_tuning(
    config: ExperimentConfig,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    *,
    batch_size: bool,
    learning_rate: bool,
    retune: bool = False,
    confirm: bool = False,
    phase: LRPhase = ONE_PHASE,
) -> TuningOutcome:
    """Tune what is asked -- batch size always before LR, then the LR's confirmation (``confirm``) -- reusing what
    the record still covers; apply it."""
    started = time.perf_counter()
    trainer = build_tuning_trainer(config)
    model = model_trigger(config.module_config.backbone, module.model)
    run = TuningRun(config, module, datamodule, load_record(config.tuner_config.results_path), model, retune, phase)
    steps: dict[str, BatchSizeStep | LearningRateStep | ConfirmStep] = {}
    if batch_size:
        steps["batch_size"] = batch_size_step(run, trainer)
    plan = batch_plan_step(run, trainer.world_size)
    lr_step = confirmation = None
    if learning_rate:
        lr_step = steps[phase.record_key] = learning_rate_step(run, plan)
    if confirm and lr_step is not None and lr_step.learning_rate is not None:
        confirmation = steps["lr_confirm"] = confirm_step(run, plan, lr_step)
    elif confirm:
        say("No learning rate to confirm: the finder suggested none.", level=logging.WARNING)
    results_path = save_record(run, steps)
    reused = tuple(name for name, step in steps.items() if step.reused)
    searched = [name for name, step in steps.items() if step.entry is not None]
    say(
        "Tuning took %.1f s (searched: %s; reused: %s).",
        time.perf_counter() - started,
        ", ".join(searched) or "nothing",
        ", ".join(reused) or "nothing",
    )
    return TuningOutcome.from_steps(plan, lr_step, reused=reused, results_path=results_path, confirmation=confirmation)
