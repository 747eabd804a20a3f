"""The tuning workflow's two searches, each one call into the tuner: the batch-size search (``scale_batch_size``)
and the LR range test (``lr_find``, Smith 2015/2017), with what the run reports of the latter (its plot, its
diagnostics).

The searches apply nothing: the steps that call them (``steps.py``) decide whether to search at all, and write what
was found onto the module and the datamodule.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L

from traenslenzor.doc_classifier.config import ExperimentConfig
from traenslenzor.doc_classifier.log import is_rank_zero, say
from traenslenzor.doc_classifier.tuning.batch_plan import SearchBound
from traenslenzor.tuner import AdaptiveRange, LRFinderResult, Tuner

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
        update_attr=False,  # apply_learning_rate (steps.py) is the one writer: it also sets OneCycle's peak
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


def report_lr_search(result: LRFinderResult, config: ExperimentConfig) -> tuple[Path, tuple[str, ...]]:
    """After the LR search: the plot (rank 0 writes it) and the diagnostics; returns the plot's path and them."""
    tc = config.tuner_config
    if is_rank_zero():
        save_plot(result, tc.plot_path, tc.suggestion_method)
    say("  LR finder plot saved to: %s", tc.plot_path)
    return tc.plot_path, _log_diagnostics(result, tc.suggestion_method)
