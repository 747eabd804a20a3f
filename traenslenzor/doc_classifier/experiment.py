"""``run_experiment(config)``: build data, model and trainers, tune (batch size, then LR), then fit/validate/test.

The command line that calls it lives in ``cli.py``. Cheap checks (:func:`preflight`) run before anything
expensive: the pretrained-weights file, the checkpoint, flags that contradict the stage; the dataset folder is
checked when the datamodule is built, before the model.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torchmetrics import Metric

from traenslenzor.doc_classifier.checkpoint_file import TRUST_FLAG, check_loads_as_data
from traenslenzor.doc_classifier.config import SHARDING_STRATEGIES, SPAWNING_STRATEGIES, ConfigError, ExperimentConfig
from traenslenzor.doc_classifier.data import DocDataModule
from traenslenzor.doc_classifier.inference.evaluation import evaluation_callbacks
from traenslenzor.doc_classifier.inference.predict import CKPT_REMEDY, PredictionRun, run_prediction
from traenslenzor.doc_classifier.log import is_rank_zero, say, tell
from traenslenzor.doc_classifier.models.backbones import BACKBONES, WEIGHTS_REMEDY
from traenslenzor.doc_classifier.models.pretrained_weights import check_library_weights
from traenslenzor.doc_classifier.training.module import DocClassifier
from traenslenzor.doc_classifier.training.trainer import build_trainer, build_tuning_trainer, check_accelerator
from traenslenzor.doc_classifier.training.wandb_run import require_wandb
from traenslenzor.doc_classifier.tuning import config_writer
from traenslenzor.doc_classifier.tuning.batch_plan import plan_batch
from traenslenzor.doc_classifier.tuning.confirm.trials import DATABASE_NAME, check_database
from traenslenzor.doc_classifier.tuning.phases import StageRunner, preflight_phases, train_in_phases
from traenslenzor.doc_classifier.tuning.workflow import TuningOutcome, run_tuning
from traenslenzor.tuner import BatchSizeNotFoundError, is_oom_error, preserved_training_state

_STAGE_NOUNS = {"train": "training", "val": "validation", "test": "testing"}  # predict: inference/predict.py


@dataclass(frozen=True)
class ExperimentResult:
    """What a run produced: tuning outcome (if any), final metrics, best checkpoint, saved config."""

    tuning: TuningOutcome | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: str | None = None
    saved_config: str | None = None
    predictions: PredictionRun | None = None  # stage predict
    head_tuning: TuningOutcome | None = None  # freeze_epochs > 0: the head phase's LR (``tuning``: the whole model's)


def preflight(
    config: ExperimentConfig, *, tune_learning_rate: bool, tune_batch_size: bool = False, trust: bool = False
) -> None:
    """Cheap checks that would otherwise fail minutes into a run; ``trust``: the user trusts ``ckpt_path``."""
    check_accelerator(config.trainer_config)
    require_wandb(config)
    check_pretrained(config)
    if tune_learning_rate and config.stage != "train":
        raise ConfigError(
            f"--tune-learning-rate needs stage 'train' (got {config.stage!r}); the LR only matters for training."
        )
    eval_batch_size = config.datamodule_config.eval_batch_size
    if tune_batch_size and config.stage != "train" and eval_batch_size is not None:
        # The search sets hparams.batch_size; evaluation loaders would keep the pinned size in every trial.
        raise ConfigError(
            f"--tune-batch-size with stage {config.stage!r} sizes the evaluation batch, but "
            f"datamodule_config.eval_batch_size = {eval_batch_size} pins it; remove eval_batch_size (evaluation "
            "then uses batch_size, which the search sets)."
        )
    strategy = config.trainer_config.strategy
    if (tune_batch_size or tune_learning_rate) and strategy.startswith(SPAWNING_STRATEGIES):
        raise ConfigError(
            f"trainer_config.strategy = {strategy!r} cannot be tuned: it runs every fit in processes started for "
            "that fit, and what the tuner finds there is lost when they end. Use strategy = 'ddp' (Lightning "
            f"starts one process per device, once), or train with {strategy!r} without tuning flags."
        )
    if (tune_batch_size or tune_learning_rate) and strategy.startswith(SHARDING_STRATEGIES):
        raise ConfigError(
            f"trainer_config.strategy = {strategy!r} cannot be tuned yet: the tuner snapshots and restores each "
            "process's whole model and optimizer, and does not handle sharded parameters. Tune with strategy = "
            f"'ddp' (a conservative batch size: {strategy} needs less memory per process), save it with "
            f"--save-tuned-config, then train with {strategy!r} without tuning flags."
        )
    if config.stage != "train" and config.ckpt_path is None:
        tell("stage %r without ckpt_path evaluates an untrained model.", config.stage, level=logging.WARNING)
    if config.ckpt_path is not None and not Path(config.ckpt_path).is_file():
        raise ConfigError(
            f"ckpt_path = {str(config.ckpt_path)!r}: checkpoint file not found. Point it at a saved .ckpt "
            "(training writes them under <log_dir>/csv/<run_name>/version_N/checkpoints/) or remove ckpt_path."
        )
    if config.ckpt_path is not None:
        _check_checkpoint(config.ckpt_path, trust)


def _check_checkpoint(path: Path, trust: bool) -> None:
    """Lightning opens ``ckpt_path`` itself (``_checkpoint_kwargs`` asks it for data only): refuse, now, a file that
    needs more, unless the user trusts it."""
    if trust:
        tell(
            "ckpt_path = %r is opened unrestricted (%s): any code it holds runs.",
            str(path),
            TRUST_FLAG,
            level=logging.WARNING,
        )
        return
    check_loads_as_data(path, setting="ckpt_path", remedy=CKPT_REMEDY)


def _checkpoint_kwargs(method: Any, trust: bool) -> dict[str, bool]:
    """``weights_only`` for Lightning's own load of ``ckpt_path``, where its ``fit``/``validate``/``test`` take it
    (Lightning >= 2.5): data only, unless the user trusts the file."""
    return {"weights_only": not trust} if "weights_only" in inspect.signature(method).parameters else {}


def check_pretrained(config: ExperimentConfig) -> None:
    """The start's weights, before any data is built: the local file, or the library's (cached, or downloaded now)."""
    mc = config.module_config
    weights = mc.pretrained_weights
    if mc.pretrained and weights is not None and not Path(weights).is_file():
        raise ConfigError(
            f"module_config.pretrained_weights = {str(weights)!r}: file not found. Point it at a local .pth, "
            ".safetensors or this app's .ckpt, remove it to use the library's own weights, or set pretrained = false."
        )
    if mc.pretrained and weights is not None and Path(weights).suffix != ".safetensors":  # safetensors hold no code
        check_loads_as_data(weights, setting="module_config.pretrained_weights", remedy=WEIGHTS_REMEDY)
    if mc.pretrained and weights is None:
        entry = BACKBONES.get(mc.backbone)
        check_library_weights(mc.backbone, None if entry is None else entry.library)


def preflight_confirmation(config: ExperimentConfig) -> None:
    """What ``--confirm-learning-rate`` needs, checked before any data, model or process is made: validation data to
    score the trials on, a study database that is Optuna's (or none yet), and one process (the study is written by
    one; under DDP it is refused, docs/cli.md)."""
    tc = config.trainer_config
    if tc.limit_val_batches == 0:
        raise ConfigError(
            "--confirm-learning-rate scores its trials on validation loss, but trainer_config.limit_val_batches = 0 "
            "turns validation off; set it above 0 (or drop --confirm-learning-rate)."
        )
    check_database(config.tuner_config.plot_path.parent / DATABASE_NAME)  # corrupt or foreign: exit 2, untouched
    if isinstance(tc.devices, int) and tc.devices > 0:
        processes = tc.devices * tc.num_nodes
    else:
        processes = build_tuning_trainer(config).world_size  # a Trainer built, not run: it resolves "auto"
    if processes > 1:
        raise ConfigError(
            f"--confirm-learning-rate runs in one process, but this run would start {processes} (devices = "
            f"{tc.devices!r}, num_nodes = {tc.num_nodes}): confirm with devices = 1 (e.g. --trainer_config.devices=1 "
            "--tune-only --save-tuned-config), then train on all devices without the flag."
        )


def build_datamodule(config: ExperimentConfig) -> DocDataModule:
    """The ``DocDataModule``, set up now so that a missing dataset fails before any model is built."""
    datamodule = DocDataModule(config.datamodule_config)
    datamodule.prepare_data()
    if datamodule.num_classes != config.module_config.num_classes:
        raise ConfigError(
            f"module_config.num_classes = {config.module_config.num_classes} but the data has "
            f"{datamodule.num_classes} classes; set module_config.num_classes = {datamodule.num_classes}."
        )
    return datamodule


def build_module(config: ExperimentConfig) -> DocClassifier:
    return DocClassifier(
        config.module_config,
        image_size=config.datamodule_config.image_size,
        max_lr=config.onecycle_max_lr(),
    )


def _final_metrics(trainer: Any) -> dict[str, float]:
    return {key: float(value) for key, value in sorted(trainer.callback_metrics.items()) if value.numel() == 1}


def run_stage(
    config: ExperimentConfig,
    module: Any,
    datamodule: Any,
    callbacks: Sequence[Any] = (),
    accumulate_grad_batches: int | None = None,
    trust_checkpoint: bool = False,
) -> tuple[dict[str, float], str | None]:
    """Fit, validate or test with the training trainer; returns final metrics and the best checkpoint.

    ``ckpt_path`` is loaded by Lightning as data (``weights_only=True``) unless ``trust_checkpoint``."""
    extra = [*callbacks, *evaluation_callbacks(config, getattr(datamodule, "classes", ()))]  # val/test: per class
    trainer = build_trainer(config, extra, accumulate_grad_batches)
    noun, method = _STAGE_NOUNS[config.stage], config.lightning_method
    tell("Starting %s (%s)...", noun, method)
    ckpt = str(config.ckpt_path) if config.ckpt_path is not None else None
    run = getattr(trainer, method)  # fit, validate or test
    run(module, datamodule=datamodule, ckpt_path=ckpt, **_checkpoint_kwargs(run, trust_checkpoint))
    metrics = _final_metrics(trainer)
    best = getattr(trainer.checkpoint_callback, "best_model_path", None) or None
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith(("val/", "test/")))
    tell("Finished %s: %s", noun, shown or "no metrics")
    if best:
        score = trainer.checkpoint_callback.best_model_score
        tell(
            "Best checkpoint (%s=%s): %s",
            trainer.checkpoint_callback.monitor,
            "n/a" if score is None else f"{float(score):.4f}",
            best,
        )
    return metrics, best


def run_experiment(
    config: ExperimentConfig,
    *,
    tune_batch_size: bool = False,
    tune_learning_rate: bool = False,
    tune_only: bool = False,
    retune: bool = False,
    save_tuned_config: str | Path | None = None,
    config_path: str | Path | None = None,
    callbacks: Sequence[Any] = (),
    confirm_learning_rate: bool = False,
    trust_checkpoint: bool = False,
) -> ExperimentResult:
    """Run one experiment as the guide describes. ``save_tuned_config`` needs ``config_path`` (the source file).

    ``[tuner_config] use_batch_size_tuning`` / ``use_learning_rate_tuning`` / ``confirm_learning_rate`` switch
    tuning on as the flags do; confirming the LR runs (or reuses) the LR finder first. ``retune`` searches again
    even where the tuning record still matches. ``ckpt_path`` is opened as data (``checkpoint_file.py``) unless
    ``trust_checkpoint``.
    """
    confirm = confirm_learning_rate or config.tuner_config.confirm_learning_rate
    tune_batch_size = tune_batch_size or config.tuner_config.use_batch_size_tuning
    tune_learning_rate = tune_learning_rate or config.tuner_config.use_learning_rate_tuning or confirm
    tuning_asked = tune_batch_size or tune_learning_rate
    if config.stage == "predict":
        return _predict(config, tuning_asked or tune_only or save_tuned_config is not None, trust_checkpoint)
    if (tune_only or save_tuned_config is not None) and not tuning_asked:
        raise ConfigError("--tune-only/--save-tuned-config need --tune-batch-size and/or --tune-learning-rate.")
    if save_tuned_config is not None and config_path is None:
        raise ConfigError("save_tuned_config needs config_path: the TOML file whose values are updated.")
    preflight(config, tune_learning_rate=tune_learning_rate, tune_batch_size=tune_batch_size, trust=trust_checkpoint)
    _preflight_extras(config, confirm=confirm, tune_only=tune_only, saving=save_tuned_config is not None)
    if config.trainer_config.cpu_threads is not None:
        torch.set_num_threads(config.trainer_config.cpu_threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = build_datamodule(config)
    module = build_module(config)
    if _phased(config):  # freeze_epochs: the head alone, then the whole model (tuning/phases.py)
        flags = {"tune_batch_size": tune_batch_size, "tune_learning_rate": tune_learning_rate, "retune": retune}
        return _train_in_phases(config, module, datamodule, {**flags, "confirm": confirm}, callbacks)
    tuning = None
    try:
        if tuning_asked:
            with leaving_no_trace(module):
                tuning = run_tuning(
                    config, module, datamodule, batch_size=tune_batch_size, learning_rate=tune_learning_rate,
                    retune=retune, confirm=confirm,
                )  # fmt: skip
            accumulation = tuning.accumulate_grad_batches
        else:
            accumulation = settle_effective_batch(config, datamodule)
        saved = None
        if save_tuned_config is not None:
            path = config_writer.save_tuning(config_path, save_tuned_config, tuning, config) if is_rank_zero() else None
            saved = None if path is None else str(path)
        if tune_only:
            tell("Tuning only (--tune-only): not training.")
            return ExperimentResult(tuning=tuning, saved_config=saved)
        metrics, best = run_stage(config, module, datamodule, callbacks, accumulation, trust_checkpoint)
    except Exception as exc:
        # BatchSizeNotFoundError (nothing fitted) carries its own remedies, and the OOM text of its last trial.
        if tune_batch_size and is_oom_error(exc) and not isinstance(exc, BatchSizeNotFoundError):
            _explain_oom_after_batch_tuning(config, int(datamodule.hparams.batch_size))
        raise
    return ExperimentResult(tuning=tuning, metrics=metrics, best_checkpoint=best, saved_config=saved)


def _predict(config: ExperimentConfig, tuning_flags: bool, trust_checkpoint: bool) -> ExperimentResult:
    if tuning_flags:
        raise ConfigError("--stage predict classifies with a trained checkpoint; it takes no tuning flags.")
    return ExperimentResult(predictions=run_prediction(config, trust_checkpoint=trust_checkpoint))


def _phased(config: ExperimentConfig) -> bool:
    return config.stage == "train" and config.module_config.finetune.freeze_epochs > 0


def _preflight_extras(config: ExperimentConfig, *, confirm: bool, tune_only: bool, saving: bool) -> None:
    """The checks of ``--confirm-learning-rate`` and of fine-tuning's two phases, before any data is built."""
    if confirm:
        preflight_confirmation(config)
    if _phased(config):
        preflight_phases(config, tune_only=tune_only, saving=saving)


def _train_in_phases(
    config: ExperimentConfig, module: Any, datamodule: Any, flags: dict[str, bool], callbacks: Sequence[Any]
) -> ExperimentResult:
    """Fine-tuning's two phases (``tuning/phases.py``), fitted by this module's ``run_stage``."""

    def fit(phase_config: ExperimentConfig, extra: list[Any], accumulation: int) -> tuple[dict[str, float], str | None]:
        return run_stage(phase_config, module, datamodule, [*callbacks, *extra], accumulation)

    runner = StageRunner(fit, leaving_no_trace, settle_effective_batch)
    run = train_in_phases(config, module, datamodule, runner, **flags)
    return ExperimentResult(run.tuning, run.metrics, run.best_checkpoint, head_tuning=run.head_tuning)


@contextmanager
def leaving_no_trace(module: L.LightningModule) -> Iterator[None]:
    """Tuning leaves training as it found it, so that a run that searches trains exactly as one that reuses.

    The tuner restores the weights and the RNGs as of each search's start, but each search is a ``fit`` of its own,
    and Lightning draws a loader seed from the global RNG while setting that fit up, before the search starts:
    without the snapshot here, a searched run trained on other batches (and augmentations) than a reused one. The
    search's steps also update the module's torchmetrics (not buffers, so not restored), which would count in the
    first epoch's ``train/acc``.
    """
    with preserved_training_state(module):
        yield
    for metric in module.modules():
        if isinstance(metric, Metric):
            metric.reset()


def settle_effective_batch(config: ExperimentConfig, datamodule: DocDataModule) -> int:
    """Without tuning: the accumulation (and per-process batch) that ``effective_batch_size`` asks for."""
    effective = config.datamodule_config.effective_batch_size
    if effective is None:
        return config.trainer_config.accumulate_grad_batches
    world_size = build_tuning_trainer(config).world_size  # a Trainer built, not run: it resolves "auto"
    plan = plan_batch(int(datamodule.hparams.batch_size), world_size, 1, effective)
    datamodule.hparams.batch_size = plan.per_process
    say("Batch: %s (effective_batch_size %d)", plan.describe(), effective)
    return plan.accumulation


def _explain_oom_after_batch_tuning(config: ExperimentConfig, batch_size: int) -> None:
    """Why a size the search found can still run out of memory later, and the three ways out."""
    tuner = config.tuner_config
    say(
        "Out of memory at batch size %d, which --tune-batch-size found: its trials ran %d steps each from an empty "
        "allocator cache, and a longer run can fragment memory further. Re-run without --tune-batch-size and with "
        "--datamodule_config.batch_size=%d (10%% smaller), or tune with a larger --tuner_config.margin (now %g; "
        "binsearch and auto), or start Python with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (CUDA).",
        batch_size,
        tuner.steps_per_trial,
        max(1, int(batch_size * 0.9)),
        tuner.margin,
        level=logging.ERROR,
    )
