"""The tuning workflow: batch size first, then the LR range test (Smith 2015/2017), then apply both.

Order matters: the best LR depends on the batch size, so the batch size is always tuned first, whatever the order
of the CLI flags. After the LR step the module's ``hparams.learning_rate`` holds the LR and ``hparams.max_lr``
(OneCycle's peak) ``max_lr_factor`` x it.

Each value is searched only when its tuning record (``tuning_record.py``) does not match today's run: a matching
record is reused in seconds, and the log names the trigger that changed when one did. The LR belongs to the global
batch (``batch_plan.py``): a reused LR found at another global batch is rescaled, unless ``rescale_lr = false``,
in which case the batch change is a trigger and the LR is searched again.

``run_tuning`` is a sequence of steps, each returning a typed value: ``batch_size_step`` (a ``BatchSizeStep``),
``batch_plan_step`` (the ``BatchPlan`` training uses), ``learning_rate_step`` (a ``LearningRateStep``), then
``save_record`` writes the entries of the searches that ran; ``TuningOutcome.from_steps`` puts them together.

Under DDP every rank runs this workflow with the same inputs and so takes the same decisions; the log lines, the
plot and the record are written by rank 0 only.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from traenslenzor.doc_classifier.batch_plan import BatchPlan, SearchBound, plan_batch, rescale_for_batch, search_bound
from traenslenzor.doc_classifier.config import ExperimentConfig
from traenslenzor.doc_classifier.log import is_rank_zero, say
from traenslenzor.doc_classifier.lr_confirm import confirm_learning_rate, prepare_confirmation
from traenslenzor.doc_classifier.trainer import build_tuning_trainer
from traenslenzor.doc_classifier.tuning_record import (
    Entry,
    Fingerprint,
    batch_fingerprint,
    changed_triggers,
    device_trigger,
    load_record,
    lr_fingerprint,
    model_trigger,
    new_entry,
    write_record,
)
from traenslenzor.tuner import AdaptiveRange, LRFinderResult, Tuner


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


# --- the batch size ------------------------------------------------------------------------------------------------


def tune_batch_size(
    tuner: Tuner,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    config: ExperimentConfig,
    bound: SearchBound | None = None,
) -> int | None:
    """Run ``scale_batch_size`` up to ``bound`` (default ``max_val``); the tuner writes the size to
    ``datamodule.hparams.batch_size``."""
    tc = config.tuner_config
    bound = bound if bound is not None else SearchBound(tc.max_val)
    init_val = min(tc.init_val, bound.max_val)
    say("Running batch size tuning...")
    say("Mode: %s, init_val: %d, max_trials: %d", tc.batch_size_mode, init_val, tc.max_trials)
    for note in bound.notes:
        say(note)
    found = tuner.scale_batch_size(
        module,
        datamodule=datamodule,
        method=config.lightning_method,
        mode=tc.batch_size_mode,
        steps_per_trial=tc.steps_per_trial,
        init_val=init_val,
        max_trials=tc.max_trials,
        batch_arg_name="batch_size",
        margin=tc.margin,
        max_val=bound.max_val,
        max_memory=tc.max_memory,
    )
    if found is None:  # fast_dev_run: the tuner ran no search (and kept no record)
        say("No batch size found (fast_dev_run?); keeping %s.", datamodule.hparams.batch_size, level=logging.WARNING)
        return None
    say("✓ Optimal batch size found: %d", found)
    return int(found)


# --- the learning rate ---------------------------------------------------------------------------------------------


def _describe_mode(mode: str) -> str:
    return {"exponential": "exponentially", "linear": "linearly"}.get(mode, mode)


def _log_diagnostics(result: LRFinderResult, method: str | None) -> tuple[str, ...]:
    """Log the result's automatic advice (curve never fell, too noisy, ...); returns it as ``severity: message``."""
    messages = []
    for finding in result.diagnostics(method=method):
        level = logging.WARNING if finding.severity in ("warning", "error") else logging.INFO
        say("  Diagnostic (%s): %s", finding.severity, finding.message, level=level)
        messages.append(f"{finding.severity}: {finding.message}")
    return tuple(messages)


def save_plot(result: LRFinderResult, path: Path, method: str | None = None) -> Path:
    """The LR-vs-loss figure as a PNG, with the suggestion of rule ``method`` (the one the run applies) marked."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = result.plot(suggest=True, show=False, method=method)
    try:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def tune_learning_rate(
    tuner: Tuner, module: L.LightningModule, datamodule: L.LightningDataModule, config: ExperimentConfig
) -> tuple[LRFinderResult | None, float | None]:
    """Run ``lr_find``; returns the result and its suggestion (None when there is none). Applies nothing itself."""
    tc = config.tuner_config
    say("Running learning rate finder (LR range test)...")
    say("Training for ~%d iterations while %s increasing LR...", tc.num_training, _describe_mode(tc.lr_mode))
    result = tuner.lr_find(
        module,
        datamodule=datamodule,
        min_lr=tc.min_lr,
        max_lr=tc.max_lr,
        num_training=tc.num_training,
        mode=tc.lr_mode,
        early_stop_threshold=tc.early_stop_threshold,
        update_attr=False,  # apply_learning_rate is the one writer: it also sets OneCycle's peak
        attr_name="learning_rate",
        adaptive_range=AdaptiveRange() if tc.adaptive_range else None,  # Tuner's own default is Lightning's fixed range
    )
    if result is None:
        say("LR finder did not run (fast_dev_run?); keeping %.2e.", module.hparams.learning_rate, level=logging.WARNING)
        return None, None
    suggestion = result.suggestion(method=tc.suggestion_method)  # None: the tuner's default rule
    if suggestion is not None and not (math.isfinite(suggestion) and suggestion > 0):
        suggestion = None
    return result, suggestion


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


def _report_search(result: LRFinderResult, config: ExperimentConfig) -> tuple[Path, tuple[str, ...]]:
    """After the LR search: the plot (rank 0 writes it) and the diagnostics; returns the plot's path and them."""
    tc = config.tuner_config
    if is_rank_zero():
        save_plot(result, tc.plot_path, tc.suggestion_method)
    say("  LR finder plot saved to: %s", tc.plot_path)
    return tc.plot_path, _log_diagnostics(result, tc.suggestion_method)


# --- reuse ---------------------------------------------------------------------------------------------------------


def _reusable(entry: Entry | None, fingerprint: dict[str, Any], what: str, *, retune: bool) -> Entry | None:
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


def _reuse_note(what: str, value: str, path: Path, entry: Entry) -> None:
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
class TuningRun:
    """What every step reads: the run's config, module and data, the record as loaded, the model's trigger."""

    config: ExperimentConfig
    module: L.LightningModule
    datamodule: L.LightningDataModule
    record: dict[str, Entry]
    model: dict[str, Any]  # model_trigger(): the backbone and its parameter count
    retune: bool = False

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
    entry = _reusable(run.record.get("batch_size"), fingerprint, "batch size", retune=run.retune)
    if entry is not None:
        size = int(entry.values["batch_size"])
        run.datamodule.hparams.batch_size = size
        _reuse_note("batch size", str(size), run.record_path, entry)
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
        say("✓ Suggested learning rate: %.2e%s", lr, f" (band {band[0]:.1e} .. {band[1]:.1e})" if band else "")
    return result, lr


def _apply_lr(run: TuningRun, previous: float, lr: float, weight_decay: float) -> tuple[float | None, float | None]:
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
    return max_lr, moved


def _lr_entry(
    result: LRFinderResult,
    lr: float | None,
    weight_decay: float,
    plan: BatchPlan,
    fingerprint: Fingerprint,
    diagnostics: tuple[str, ...],
) -> Entry:
    """The record's entry for an LR search: the values, at which batch, and the whole curve."""
    values = {
        "learning_rate": lr,
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
    fingerprint = lr_fingerprint(run.config, run.model)
    entry = _reusable(run.record.get("learning_rate"), fingerprint, "learning rate", retune=run.retune)
    carried = None if entry is None else _lr_for_batch(entry, plan, run.config)
    if entry is not None and carried is not None:
        lr, weight_decay = carried
        _reuse_note("learning rate", f"{entry.values['learning_rate']:.2e}", run.record_path, entry)
        max_lr, moved = _apply_lr(run, previous, lr, weight_decay)
        return LearningRateStep(previous, lr, max_lr, moved, reused=True)
    result, lr = _search_learning_rate(run, plan)
    max_lr, moved = _apply_lr(run, previous, lr, weight_decay) if lr is not None else (None, None)
    if result is None:
        return LearningRateStep(previous, lr, max_lr, moved)
    plot_path, diagnostics = _report_search(result, run.config)
    entry = _lr_entry(result, lr, weight_decay, plan, fingerprint, diagnostics)
    return LearningRateStep(previous, lr, max_lr, moved, str(plot_path), diagnostics, entry=entry)


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
    """Confirm the LR step's value by training candidates (``lr_confirm.py``), or reuse the recorded confirmation
    while its triggers hold; apply the confirmed LR and OneCycle's peak."""
    suggestion = float(lr_step.learning_rate)
    setup = prepare_confirmation(
        run.config, run.datamodule, suggestion=suggestion, finder_result=_finder_curve(run, lr_step),
        accumulation=plan.accumulation, model=run.model,
    )  # fmt: skip
    recorded = _reusable(run.record.get("lr_confirm"), setup.fingerprint, "confirmed learning rate", retune=run.retune)
    entry = None
    if recorded is not None:
        values = recorded.values
        _reuse_note("confirmed learning rate", f"{values['learning_rate']:.2e}", run.record_path, recorded)
    else:
        outcome = confirm_learning_rate(run.config, run.module, run.datamodule, setup, fresh=run.retune)
        values = {
            "learning_rate": outcome.learning_rate, "trials": len(outcome.trials), "steps": outcome.steps,
            "percent": outcome.percent, "plot": str(outcome.plot), "suggestion": suggestion,
            "study": outcome.study_name, "database": str(outcome.database),
            "planned_steps": setup.plan.planned_steps, "global_batch": plan.global_batch,
        }  # fmt: skip
        trials = [{"lr": t.lr, "rung": t.rung, "loss": t.loss, "steps": t.steps} for t in outcome.trials]
        entry = new_entry(values, setup.fingerprint, {"plan": setup.plan.to_dict(), "trials": trials})
        say("  LR confirmation plot saved to: %s (study %s in %s)", outcome.plot, outcome.study_name, outcome.database)
    lr = float(values["learning_rate"])
    say(
        "✓ Confirmed learning rate: %.2e (%d trials, %d training steps = %.1f %% of the planned training)",
        lr, values["trials"], values["steps"], values["percent"],
    )  # fmt: skip
    max_lr, _ = _apply_lr(run, suggestion, lr, run.module.config.optimizer.weight_decay)
    return ConfirmStep(
        suggestion, lr, max_lr, values["trials"], values["steps"], values["percent"], values["plot"],
        reused=recorded is not None, entry=entry,
    )  # fmt: skip


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
) -> TuningOutcome:
    """Tune what is asked -- batch size always before LR, then the LR's confirmation (``confirm``) -- reusing what
    the record still covers; apply it."""
    started = time.perf_counter()
    trainer = build_tuning_trainer(config)
    model = model_trigger(config.module_config.backbone, module.model)
    run = TuningRun(config, module, datamodule, load_record(config.tuner_config.results_path), model, retune)
    steps: dict[str, BatchSizeStep | LearningRateStep | ConfirmStep] = {}
    if batch_size:
        steps["batch_size"] = batch_size_step(run, trainer)
    plan = batch_plan_step(run, trainer.world_size)
    lr_step = confirmation = None
    if learning_rate:
        lr_step = steps["learning_rate"] = learning_rate_step(run, plan)
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
