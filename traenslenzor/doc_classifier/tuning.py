"""The guide's tuning workflow: batch size first, then the LR range test (Smith 2015/2017), then apply both.

Order matters (guide, "Best Practices" 1): the best LR depends on the batch size, so the batch size is always
tuned first, whatever the order of the CLI flags. After the LR search the module's ``hparams.learning_rate`` holds
the suggestion and ``hparams.max_lr`` (OneCycle's peak) ``max_lr_factor`` x it (guide, "Best Practices" 2). The
LR plot is saved, and a JSON of both results beside it; the LR result's diagnostics are logged.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from traenslenzor.doc_classifier.config import ExperimentConfig
from traenslenzor.doc_classifier.log import say
from traenslenzor.tuner import LRFinderResult, Tuner


@dataclass(frozen=True)
class TuningOutcome:
    """What tuning found and applied; ``None`` for what was not tuned (or not found)."""

    batch_size: int | None = None
    learning_rate: float | None = None
    previous_learning_rate: float | None = None
    max_lr: float | None = None
    plot_path: str | None = None
    results_path: str | None = None
    diagnostics: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The [tuner_config] keys the batch-size search reads, kept in tuning_results.json beside the size found.
BATCH_SEARCH_KEYS = frozenset(
    {"batch_size_mode", "init_val", "max_trials", "steps_per_trial", "margin", "max_val", "max_memory"}
)


def tune_batch_size(
    tuner: Tuner, module: L.LightningModule, datamodule: L.LightningDataModule, config: ExperimentConfig
) -> tuple[int | None, dict[str, Any]]:
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
    record = {"method": config.lightning_method, **tc.model_dump(mode="json", include=BATCH_SEARCH_KEYS)}
    record["found"] = found
    if found is None:  # fast_dev_run: the tuner ran no search (and kept no record)
        say("No batch size found (fast_dev_run?); keeping %s.", datamodule.hparams.batch_size, level=logging.WARNING)
        return None, record
    record["search"] = tuner.batch_size_result.to_dict()  # every trial, for tuning_results.json
    say("✓ Optimal batch size found: %d", found)
    return int(found), record


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


def _lr_record(result: LRFinderResult, suggestion: float | None) -> dict[str, Any]:
    """The suggestion and the whole result (``LRFinderResult.from_dict`` reads ``record["result"]`` back)."""
    return {"suggestion": suggestion, "result": result.to_dict()}


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
) -> tuple[LRFinderResult | None, float | None, float, dict[str, Any]]:
    """Run ``lr_find``; returns (result, suggestion, previous LR, JSON record). Applies nothing itself."""
    tc = config.tuner_config
    previous = float(module.hparams.learning_rate)
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
    )
    if result is None:
        say("LR finder did not run (fast_dev_run?); keeping %.2e.", previous, level=logging.WARNING)
        return None, None, previous, {}
    suggestion = result.suggestion(method=tc.suggestion_method)  # None: the tuner's default rule
    if suggestion is not None and not (math.isfinite(suggestion) and suggestion > 0):
        suggestion = None
    return result, suggestion, previous, _lr_record(result, suggestion)


def apply_learning_rate(module: L.LightningModule, config: ExperimentConfig, learning_rate: float) -> float | None:
    """Set the module's LR and OneCycle's peak (``max_lr_factor`` x LR); returns the new peak."""
    module.hparams.learning_rate = learning_rate
    max_lr = config.onecycle_max_lr(learning_rate)
    module.hparams.max_lr = max_lr
    return max_lr


def _tune_and_apply_lr(
    tuner: Tuner, module: L.LightningModule, datamodule: L.LightningDataModule, config: ExperimentConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The LR half of the workflow: search, apply, log the guide's lines, save the plot, log the diagnostics."""
    tc = config.tuner_config
    result, suggestion, previous, record = tune_learning_rate(tuner, module, datamodule, config)
    outcome: dict[str, Any] = {"previous_learning_rate": previous}
    if suggestion is None:
        say(
            "No learning rate could be suggested; keeping %.2e (see the diagnostics and the plot).",
            previous,
            level=logging.WARNING,
        )
    else:
        outcome["learning_rate"] = suggestion
        outcome["max_lr"] = record["max_lr"] = apply_learning_rate(module, config, suggestion)
        say("✓ Suggested learning rate: %.2e", suggestion)
        say("  Updated optimizer LR: %.2e → %.2e", previous, suggestion)
        if outcome["max_lr"] is not None:
            say("  OneCycle max_lr: %.2e (%g × LR)", outcome["max_lr"], tc.max_lr_factor)
    if result is not None:
        outcome["plot_path"] = str(save_plot(result, tc.plot_path, tc.suggestion_method))
        say("  LR finder plot saved to: %s", tc.plot_path)
        outcome["diagnostics"] = _log_diagnostics(result, tc.suggestion_method)
        record["diagnostics"] = list(outcome["diagnostics"])
    return outcome, record


def run_tuning(
    config: ExperimentConfig,
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    *,
    batch_size: bool,
    learning_rate: bool,
) -> TuningOutcome:
    """Tune what is asked -- batch size always before LR -- apply it, save plot and JSON, log everything."""
    results_path = config.tuner_config.results_path
    tuner = Tuner(trainer)
    record: dict[str, Any] = {}
    outcome: dict[str, Any] = {}
    if batch_size:
        outcome["batch_size"], record["batch_size"] = tune_batch_size(tuner, module, datamodule, config)
    if learning_rate:
        lr_outcome, record["learning_rate"] = _tune_and_apply_lr(tuner, module, datamodule, config)
        outcome.update(lr_outcome)
    if record:
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        outcome["results_path"] = str(results_path)
        say("  Tuning results saved to: %s", results_path)
    return TuningOutcome(**outcome)
