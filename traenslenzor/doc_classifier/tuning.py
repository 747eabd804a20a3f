"""The guide's tuning workflow: batch size first, then the LR range test (Smith 2015/2017), then apply both.

Order matters (guide, "Best Practices" 1): the best LR depends on the batch size, so the batch size is always
tuned first, whatever the order of the CLI flags. After the LR step the module's ``hparams.learning_rate`` holds
the LR and ``hparams.max_lr`` (OneCycle's peak) ``max_lr_factor`` x it (guide, "Best Practices" 2).

Each value is searched only when its tuning record (``tuning_record.py``) does not match today's run: a matching
record is reused in seconds, and the log names the trigger that changed when one did. The LR belongs to the global
batch (``batch_plan.py``): a reused LR found at another global batch is rescaled, unless ``rescale_lr = false``,
in which case the batch change is a trigger and the LR is searched again.

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

from traenslenzor.doc_classifier.batch_plan import BatchPlan, plan_batch, rescale_for_batch
from traenslenzor.doc_classifier.config import ExperimentConfig
from traenslenzor.doc_classifier.config_writer import atomic_write_text
from traenslenzor.doc_classifier.log import is_rank_zero, say
from traenslenzor.doc_classifier.trainer import build_tuning_trainer
from traenslenzor.doc_classifier.tuning_record import (
    Entry,
    batch_fingerprint,
    changed_triggers,
    device_trigger,
    load_record,
    lr_fingerprint,
    model_trigger,
    new_entry,
    record_text,
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
    reused: tuple[str, ...] = ()  # "batch_size" and/or "learning_rate", taken from the record

    @property
    def global_batch(self) -> int | None:
        return None if self.batch_size is None else self.batch_size * self.world_size * self.accumulate_grad_batches


# --- the batch size ------------------------------------------------------------------------------------------------


def tune_batch_size(
    tuner: Tuner, module: L.LightningModule, datamodule: L.LightningDataModule, config: ExperimentConfig
) -> int | None:
    """Run ``scale_batch_size``; the tuner writes the size to ``datamodule.hparams.batch_size``."""
    tc = config.tuner_config
    say("Running batch size tuning...")
    say("Mode: %s, init_val: %d, max_trials: %d", tc.batch_size_mode, tc.init_val, tc.max_trials)
    found = tuner.scale_batch_size(
        module,
        datamodule=datamodule,
        method=config.lightning_method,
        mode=tc.batch_size_mode,
        steps_per_trial=tc.steps_per_trial,
        init_val=tc.init_val,
        max_trials=tc.max_trials,
        batch_arg_name="batch_size",
        margin=tc.margin,
        max_val=tc.max_val,
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


def _report_search(result: LRFinderResult, config: ExperimentConfig) -> dict[str, Any]:
    """After the LR search: the plot (rank 0 writes it) and the diagnostics; returns them for the outcome."""
    tc = config.tuner_config
    if is_rank_zero():
        save_plot(result, tc.plot_path, tc.suggestion_method)
    say("  LR finder plot saved to: %s", tc.plot_path)
    return {"plot_path": str(tc.plot_path), "diagnostics": _log_diagnostics(result, tc.suggestion_method)}


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


# --- the workflow --------------------------------------------------------------------------------------------------


def run_tuning(
    config: ExperimentConfig,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    *,
    batch_size: bool,
    learning_rate: bool,
    retune: bool = False,
) -> TuningOutcome:
    """Tune what is asked -- batch size always before LR -- reusing what the record still covers; apply it."""
    started = time.perf_counter()
    tc, path = config.tuner_config, config.tuner_config.results_path
    record = load_record(path)
    trainer = build_tuning_trainer(config)
    model = model_trigger(config.module_config.backbone, module.model)
    outcome: dict[str, Any] = {"world_size": trainer.world_size}
    reused, searched = [], []

    if batch_size:
        fingerprint = batch_fingerprint(config, device_trigger(trainer.strategy.root_device), model)
        entry = _reusable(record.get("batch_size"), fingerprint, "batch size", retune=retune)
        if entry is not None:
            datamodule.hparams.batch_size = entry.values["batch_size"]
            _reuse_note("batch size", str(entry.values["batch_size"]), path, entry)
            reused.append("batch_size")
        else:
            tuner = Tuner(trainer)
            found = tune_batch_size(tuner, module, datamodule, config)
            if found is not None:
                details = {"search": tuner.batch_size_result.to_dict()}  # every trial
                record["batch_size"] = new_entry({"batch_size": found}, fingerprint, details)
                searched.append("batch_size")

    plan = plan_batch(
        int(datamodule.hparams.batch_size),
        trainer.world_size,
        config.trainer_config.accumulate_grad_batches,
        config.datamodule_config.effective_batch_size,
    )
    datamodule.hparams.batch_size = plan.per_process
    outcome.update(batch_size=plan.per_process, accumulate_grad_batches=plan.accumulation)
    say("Batch: %s", plan.describe())

    if learning_rate:
        previous = float(module.hparams.learning_rate)
        weight_decay = config.module_config.optimizer.weight_decay
        outcome["previous_learning_rate"] = previous
        fingerprint = lr_fingerprint(config, model)
        entry = _reusable(record.get("learning_rate"), fingerprint, "learning rate", retune=retune)
        carried = None if entry is None else _lr_for_batch(entry, plan, config)
        result = None
        if carried is not None:
            lr, weight_decay = carried
            _reuse_note("learning rate", f"{entry.values['learning_rate']:.2e}", path, entry)
            reused.append("learning_rate")
        else:
            # The search runs at the global batch training will use: the same accumulation.
            lr_trainer = build_tuning_trainer(config, accumulate_grad_batches=plan.accumulation)
            result, lr = tune_learning_rate(Tuner(lr_trainer), module, datamodule, config)
            if lr is None:
                say(
                    "No learning rate could be suggested; keeping %.2e (see the diagnostics and the plot).",
                    previous,
                    level=logging.WARNING,
                )
            else:
                say("✓ Suggested learning rate: %.2e", lr)
        if lr is not None:
            outcome["learning_rate"] = lr
            outcome["max_lr"] = apply_learning_rate(module, config, lr)
            if weight_decay != config.module_config.optimizer.weight_decay:
                apply_weight_decay(module, weight_decay)
                outcome["weight_decay"] = weight_decay
            say("  Updated optimizer LR: %.2e → %.2e", previous, lr)
            if outcome["max_lr"] is not None:
                say("  OneCycle max_lr: %.2e (%g × LR)", outcome["max_lr"], tc.max_lr_factor)
        if result is not None:
            outcome.update(_report_search(result, config))
            values = {
                "learning_rate": lr,
                "weight_decay": weight_decay,
                "per_process_batch": plan.per_process,
                "world_size": plan.world_size,
                "accumulate_grad_batches": plan.accumulation,
                "global_batch": plan.global_batch,
            }
            details = {"result": result.to_dict(), "diagnostics": list(outcome["diagnostics"])}
            record["learning_rate"] = new_entry(values, fingerprint, details)
            searched.append("learning_rate")

    if searched:
        if is_rank_zero():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, record_text(record))
        outcome["results_path"] = str(path)
        say("  Tuning results saved to: %s", path)
    say(
        "Tuning took %.1f s (searched: %s; reused: %s).",
        time.perf_counter() - started,
        ", ".join(searched) or "nothing",
        ", ".join(reused) or "nothing",
    )
    return TuningOutcome(reused=tuple(reused), **outcome)
