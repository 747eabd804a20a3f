"""The tuning workflow's batch-size and LR steps: each reuses the record's entry while its triggers hold, else
searches (the searches: ``searches.py``), and applies what it found (the workflow that runs them: ``workflow.py``).

Each value is searched only when its tuning record (``record.py``) does not match today's run: a matching
record is reused in seconds, and the log names the trigger that changed when one did. The LR belongs to the global
batch (``batch_plan.py``): a reused LR found at another global batch is rescaled, unless ``rescale_lr = false``,
in which case the batch change is a trigger and the LR is searched again.

Each step returns a typed value: ``batch_size_step`` a ``BatchSizeStep``, ``batch_plan_step`` the ``BatchPlan``
training uses, ``learning_rate_step`` a ``LearningRateStep``. Under DDP every rank runs them with the same inputs and
so takes the same decisions; the log lines and the plot are written by rank 0 only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from traenslenzor.doc_classifier.config import ExperimentConfig
from traenslenzor.doc_classifier.log import say
from traenslenzor.doc_classifier.training.finetune import lowest_lr_scale
from traenslenzor.doc_classifier.training.trainer import build_tuning_trainer
from traenslenzor.doc_classifier.tuning.batch_plan import (
    BatchPlan,
    SearchBound,
    plan_batch,
    rescale_for_batch,
    search_bound,
)
from traenslenzor.doc_classifier.tuning.record import (
    Entry,
    Fingerprint,
    batch_fingerprint,
    changed_triggers,
    device_trigger,
    lr_fingerprint,
    new_entry,
)
from traenslenzor.doc_classifier.tuning.searches import report_lr_search, tune_batch_size, tune_learning_rate
from traenslenzor.tuner import LRFinderResult, Tuner

# --- applying what was found ---------------------------------------------------------------------------------------


def apply_learning_rate(module: L.LightningModule, config: ExperimentConfig, learning_rate: float) -> float | None:
    """Set the module's LR and OneCycle's peak (``max_lr_factor`` x LR); returns the new peak."""
    module.hparams.learning_rate = learning_rate
    max_lr = config.onecycle_max_lr(learning_rate)
    module.hparams.max_lr = max_lr
    return max_lr


def apply_weight_decay(module: L.LightningModule, weight_decay: float) -> None:
    """Set the optimizer's weight decay, read by ``configure_optimizers`` (and saved in checkpoints)."""
    module.config.optimizer.weight_decay = weight_decay
    module.hparams.module_config["optimizer"]["weight_decay"] = weight_decay


# --- reuse ---------------------------------------------------------------------------------------------------------


def reusable(entry: Entry | None, fingerprint: dict[str, Any], what: str, *, retune: bool) -> Entry | None:
    """``entry`` when it was found under ``fingerprint``; else None, and the log says why ``what`` is searched.

    An LR entry whose search suggested nothing is not reused: there is nothing to apply.
    """
    if entry is None or None in entry.values.values():
        return None
    if retune:
        say("Re-tuning the %s (--retune): the record from %s is not used.", what, entry.tuned_at)
        return None
    changed = changed_triggers(entry.fingerprint, fingerprint)
    if changed:
        say("Re-tuning the %s: %s changed since %s.", what, "; ".join(changed), entry.tuned_at)
        return None
    return entry


def reuse_note(what: str, value: str, path: Path, entry: Entry) -> None:
    """Log that ``what`` (worth ``value``) is taken from the record at ``path``, and which triggers it checked."""
    triggers = ", ".join(sorted(entry.fingerprint))
    say(
        "✓ Reusing %s %s from %s (tuned %s): none of its triggers changed (%s).",
        what,
        value,
        path,
        entry.tuned_at,
        triggers,
    )


def _lr_for_batch(entry: Entry, plan: BatchPlan, config: ExperimentConfig) -> tuple[float, float] | None:
    """The recorded LR (and AdamW weight decay) carried to ``plan``'s global batch; None to search again."""
    values = entry.values
    learning_rate, weight_decay, found_at = values["learning_rate"], values["weight_decay"], values["global_batch"]
    if found_at == plan.global_batch:
        return learning_rate, weight_decay
    if not config.tuner_config.rescale_lr:
        say(
            "Re-tuning the learning rate: the global batch changed (%d -> %d) and tuner_config.rescale_lr = false.",
            found_at,
            plan.global_batch,
        )
        return None
    optimizer = config.module_config.optimizer.name
    rescaled = rescale_for_batch(
        learning_rate, weight_decay, from_batch=found_at, to_batch=plan.global_batch, optimizer=optimizer
    )
    say(
        "Rescaled LR for batch %d -> %d (%s rule): %.2e -> %.2e",
        found_at,
        plan.global_batch,
        rescaled.rule,
        learning_rate,
        rescaled.learning_rate,
    )
    if rescaled.weight_decay != weight_decay:
        say("  AdamW weight_decay %.3g -> %.3g (lr x weight_decay kept)", weight_decay, rescaled.weight_decay)
    return rescaled.learning_rate, rescaled.weight_decay


# --- the steps: each returns what it found (or reused) and applied -------------------------------------------------


@dataclass(frozen=True)
class LRPhase:
    """The training phase an LR is found for (fine-tuning's freeze, then unfreeze; ``phases.py``): its record entry,
    its label in the log, and what its start depends on (a fingerprint trigger of its own)."""

    record_key: str = "learning_rate"
    label: str = ""  # "" for a one-phase run: "✓ Suggested learning rate: X"
    start: dict[str, Any] = field(default_factory=dict)


ONE_PHASE = LRPhase()


@dataclass(frozen=True)
class TuningRun:
    """What every step reads: the run's config, module and data, the record as loaded, the model's trigger."""

    config: ExperimentConfig
    module: L.LightningModule
    datamodule: L.LightningDataModule
    record: dict[str, Entry]
    model: dict[str, Any]  # model_trigger(): the backbone and its parameter count
    retune: bool = False
    phase: LRPhase = ONE_PHASE

    @property
    def record_path(self) -> Path:
        return self.config.tuner_config.results_path


@dataclass(frozen=True)
class BatchSizeStep:
    """The batch-size step: the size reused or found (None: the search found none, the config's stays)."""

    batch_size: int | None
    reused: bool = False
    entry: Entry | None = None  # the record's new entry, when a search found a size


@dataclass(frozen=True)
class LearningRateStep:
    """The LR step: the LR reused or suggested (None: none, the config's stays), and what it moved."""

    previous_learning_rate: float | None  # None: the LR was not tuned
    learning_rate: float | None = None
    max_lr: float | None = None  # OneCycle's peak, set with the LR
    weight_decay: float | None = None  # set when the LR rescale moved AdamW's weight decay
    plot_path: str | None = None
    diagnostics: tuple[str, ...] = ()
    reused: bool = False
    entry: Entry | None = None  # the record's new entry, when a search ran


def _search_bound(run: TuningRun, trainer: L.Trainer) -> SearchBound:
    """``max_val``; for training on the CPU without a memory budget, lowered to keep ``min_steps_per_epoch``."""
    config, tc = run.config, run.config.tuner_config
    if trainer.strategy.root_device.type != "cpu" or tc.max_memory is not None or config.lightning_method != "fit":
        return SearchBound(tc.max_val)
    train_size = len(run.datamodule.train_dataloader().dataset)
    accumulation = config.trainer_config.accumulate_grad_batches
    return search_bound(tc.max_val, tc.min_steps_per_epoch, train_size, trainer.world_size, accumulation)


def batch_size_step(run: TuningRun, trainer: L.Trainer) -> BatchSizeStep:
    """Reuse the recorded batch size when its triggers still match, else search; the datamodule holds the result."""
    device = device_trigger(trainer.strategy.root_device)
    bound = _search_bound(run, trainer)
    fingerprint = batch_fingerprint(run.config, device, run.model, max_val=bound.max_val)
    entry = reusable(run.record.get("batch_size"), fingerprint, "batch size", retune=run.retune)
    if entry is not None:
        size = int(entry.values["batch_size"])
        run.datamodule.hparams.batch_size = size
        reuse_note("batch size", str(size), run.record_path, entry)
        return BatchSizeStep(size, reused=True)
    tuner = Tuner(trainer)
    found = tune_batch_size(tuner, run.module, run.datamodule, run.config, bound)
    if found is None:
        return BatchSizeStep(None)
    details = {"search": tuner.batch_size_result.to_dict()}  # every trial
    return BatchSizeStep(found, entry=new_entry({"batch_size": found}, fingerprint, details))


def batch_plan_step(run: TuningRun, world_size: int) -> BatchPlan:
    """The batch training will use (``effective_batch_size`` may add accumulation); the datamodule gets its size."""
    config = run.config
    plan = plan_batch(
        int(run.datamodule.hparams.batch_size),
        world_size,
        config.trainer_config.accumulate_grad_batches,
        config.datamodule_config.effective_batch_size,
    )
    run.datamodule.hparams.batch_size = plan.per_process
    say("Batch: %s", plan.describe())
    return plan


def _search_learning_rate(run: TuningRun, plan: BatchPlan) -> tuple[LRFinderResult | None, float | None]:
    """The LR search, at the global batch training will use (the same accumulation)."""
    trainer = build_tuning_trainer(run.config, accumulate_grad_batches=plan.accumulation)
    result, lr = tune_learning_rate(Tuner(trainer), run.module, run.datamodule, run.config)
    if lr is None:
        say(
            "No learning rate could be suggested; keeping %.2e (see the diagnostics and the plot).",
            float(run.module.hparams.learning_rate),
            level=logging.WARNING,
        )
    else:
        band = getattr(result, "band", None) if run.config.tuner_config.suggestion_method is None else None
        label = f" ({run.phase.label})" if run.phase.label else ""
        say("✓ Suggested learning rate%s: %.2e%s", label, lr, f" (band {band[0]:.1e} .. {band[1]:.1e})" if band else "")
        _point_to_confirmation(run.config, band, fine_tuned=_fine_tunes_whole_model(run))
    return result, lr


def _fine_tunes_whole_model(run: TuningRun) -> bool:
    """Whether this LR trains a pretrained backbone (the whole model: not the head phase of freeze, then unfreeze)."""
    return bool(run.config.module_config.pretrained) and run.phase.record_key != "learning_rate_head"


# A band wider than this (decades) is one range test's honest uncertainty, worth a confirmation at the run's schedule.
WIDE_BAND_DECADES = 0.5


def _point_to_confirmation(
    config: ExperimentConfig, band: tuple[float, float] | None, *, fine_tuned: bool = False
) -> None:
    """Where the band is wide, or a pretrained backbone trains, and no confirmation was asked for, say what would
    settle the LR. A pretrained whole model gets the line whatever its band: on the fine-tuning benchmark its range
    test read from 0.7 decades low to 1.3 high, within narrow bands (docs/suggestion.md, "Fine-tuning")."""
    if config.tuner_config.confirm_learning_rate:
        return
    width = None if band is None else math.log10(band[1] / band[0])
    if width is not None and width > WIDE_BAND_DECADES:
        say(
            "  One range-test curve places the LR within its band (%.1f decades); to settle it at this run's own "
            "schedule, add --confirm-learning-rate (trains candidates from the band on a share of the training).",
            width,
        )
    elif fine_tuned:
        say(
            "  A pretrained backbone trains at this LR: on the fine-tuning benchmark one range test read such LRs from "
            '0.7 decades low to 1.3 high (docs/suggestion.md, "Fine-tuning"); --confirm-learning-rate checks it on '
            "the validation set, and with few examples per class a run at a low fixed LR is worth comparing."
        )


def apply_tuned_lr(
    run: TuningRun, previous: float, lr: float, weight_decay: float
) -> tuple[float | None, float | None]:
    """Write the LR, OneCycle's peak and (when it moved) the weight decay; returns (peak, moved weight decay)."""
    config = run.config
    max_lr = apply_learning_rate(run.module, config, lr)
    moved = None
    if weight_decay != config.module_config.optimizer.weight_decay:
        apply_weight_decay(run.module, weight_decay)
        moved = weight_decay
    say("  Updated optimizer LR: %.2e → %.2e", previous, lr)
    if max_lr is not None:
        say("  OneCycle max_lr: %.2e (%g × LR)", max_lr, config.tuner_config.max_lr_factor)
    lowest = lowest_lr_scale(run.module) * lr
    if lowest < lr:
        finetune = config.module_config.finetune
        say(
            "  Per-group LRs: head %.2e, lowest group %.2e (backbone_lr_scale %g, layer_decay %g)",
            lr, lowest, finetune.backbone_lr_scale, finetune.layer_decay,
        )  # fmt: skip
    return max_lr, moved


def _lr_entry(
    result: LRFinderResult,
    lr: float | None,
    weight_decay: float,
    plan: BatchPlan,
    fingerprint: Fingerprint,
    diagnostics: tuple[str, ...],
    lowest_scale: float = 1.0,
) -> Entry:
    """The record's entry for an LR search: the values, at which batch, and the whole curve."""
    values = {
        "learning_rate": lr,  # the head's: the first param group's
        "lowest_group_learning_rate": None if lr is None else lr * lowest_scale,
        "weight_decay": weight_decay,
        "per_process_batch": plan.per_process,
        "world_size": plan.world_size,
        "accumulate_grad_batches": plan.accumulation,
        "global_batch": plan.global_batch,
    }
    return new_entry(values, fingerprint, {"result": result.to_dict(), "diagnostics": list(diagnostics)})


def learning_rate_step(run: TuningRun, plan: BatchPlan) -> LearningRateStep:
    """Reuse the recorded LR (rescaled to ``plan``'s global batch) when its triggers still match, else search;
    apply what was found to the module."""
    previous = float(run.module.hparams.learning_rate)
    weight_decay = run.config.module_config.optimizer.weight_decay
    fingerprint = lr_fingerprint(run.config, run.model) | ({"phase": run.phase.start} if run.phase.start else {})
    what = f"learning rate ({run.phase.label})" if run.phase.label else "learning rate"
    entry = reusable(run.record.get(run.phase.record_key), fingerprint, what, retune=run.retune)
    carried = None if entry is None else _lr_for_batch(entry, plan, run.config)
    if entry is not None and carried is not None:
        lr, weight_decay = carried
        reuse_note(what, f"{entry.values['learning_rate']:.2e}", run.record_path, entry)
        max_lr, moved = apply_tuned_lr(run, previous, lr, weight_decay)
        return LearningRateStep(previous, lr, max_lr, moved, reused=True)
    result, lr = _search_learning_rate(run, plan)
    max_lr, moved = apply_tuned_lr(run, previous, lr, weight_decay) if lr is not None else (None, None)
    if result is None:
        return LearningRateStep(previous, lr, max_lr, moved)
    plot_path, diagnostics = report_lr_search(result, run.config)
    entry = _lr_entry(result, lr, weight_decay, plan, fingerprint, diagnostics, lowest_lr_scale(run.module))
    return LearningRateStep(previous, lr, max_lr, moved, str(plot_path), diagnostics, entry=entry)
