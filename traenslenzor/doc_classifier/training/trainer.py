"""Lightning ``Trainer`` factories: one for training (callbacks and loggers), one bare one for tuning.

Training logs go under ``trainer_config.log_dir`` (``.logs/`` by default): CSV metrics in
``.logs/csv/<run_name>/version_N/`` (checkpoints beside them in ``checkpoints/``) and TensorBoard events in
``.logs/tensorboard/<run_name>/version_N/``; with ``loggers`` naming ``"wandb"``, a W&B run in ``.logs/wandb/``.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from traenslenzor.doc_classifier.config import ConfigError, ExperimentConfig, TrainerConfig
from traenslenzor.doc_classifier.log import TRAIN_PREFIX
from traenslenzor.doc_classifier.training.wandb_run import wandb_callbacks, wandb_logger

log = logging.getLogger(__name__)


def _common_kwargs(config: TrainerConfig, accumulate_grad_batches: int | None) -> dict[str, Any]:
    """Settings that tuning must share with training: the batch size and LR found depend on them.

    ``accumulate_grad_batches`` replaces the configured one when ``effective_batch_size`` decided it.
    """
    return {
        "accelerator": config.accelerator,
        "devices": config.devices,
        "strategy": config.strategy,
        "num_nodes": config.num_nodes,
        "sync_batchnorm": config.sync_batchnorm,
        "precision": config.precision,
        "accumulate_grad_batches": accumulate_grad_batches or config.accumulate_grad_batches,
        "gradient_clip_val": config.gradient_clip_val,
        "deterministic": config.deterministic,
        "default_root_dir": str(config.log_dir),
    }


class EffectiveHyperparameters(Callback):
    """Logs, at the start of training, the batch size and LRs training really uses.

    They are read from the live dataloader, trainer and optimizer, not from the config: the evidence that tuned
    values were applied. With several processes every rank logs its own line, tagged with its rank: the evidence
    that all train with the same values.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        group = trainer.optimizers[0].param_groups[0]
        peak = group.get("max_lr")
        batch = getattr(trainer.train_dataloader, "batch_size", None)
        rank = f" (rank {trainer.global_rank} of {trainer.world_size})" if trainer.world_size > 1 else ""
        log.info(
            "%sIn effect%s: batch_size=%s, accumulate_grad_batches=%d, global batch=%s, learning_rate=%.6g, "
            "optimizer LR now=%.6g, weight_decay=%.6g, OneCycle max_lr=%s",
            TRAIN_PREFIX,
            rank,
            batch,
            trainer.accumulate_grad_batches,
            "?" if batch is None else batch * trainer.world_size * trainer.accumulate_grad_batches,
            pl_module.hparams.get("learning_rate", float("nan")),
            group["lr"],
            group["weight_decay"],
            "none" if peak is None else f"{peak:.6g}",
        )
        groups = trainer.optimizers[0].param_groups
        lowest = min(groups, key=lambda g: g["lr"])
        if lowest["lr"] < group["lr"]:  # per-group LRs ([module_config.finetune]): the head's group is the first
            log.info(
                "%sIn effect%s: %d param groups, head LR now=%.6g, lowest group LR now=%.6g (%.3g x head), "
                "lowest group OneCycle max_lr=%s",
                TRAIN_PREFIX,
                rank,
                len(groups),
                group["lr"],
                lowest["lr"],
                lowest["lr"] / group["lr"],
                "none" if lowest.get("max_lr") is None else f"{lowest['max_lr']:.6g}",
            )


def build_callbacks(config: TrainerConfig) -> list[Callback]:
    callbacks: list[Callback] = [LearningRateMonitor(logging_interval="step"), EffectiveHyperparameters()]
    if config.checkpoint.enabled:
        callbacks.append(
            ModelCheckpoint(
                monitor=config.checkpoint.monitor,
                mode=config.checkpoint.mode,
                save_top_k=config.checkpoint.save_top_k,
                save_last=config.checkpoint.save_last,
                filename="epoch{epoch:03d}-step{step}",
                auto_insert_metric_name=False,
            )
        )
    if config.early_stopping.enabled:
        callbacks.append(
            EarlyStopping(
                monitor=config.early_stopping.monitor,
                mode=config.early_stopping.mode,
                patience=config.early_stopping.patience,
                min_delta=config.early_stopping.min_delta,
            )
        )
    if config.enable_progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, config.log_every_n_steps // 5)))
    return callbacks


def build_trainer(
    config: ExperimentConfig,
    extra_callbacks: list[Callback] | None = None,
    accumulate_grad_batches: int | None = None,
) -> L.Trainer:
    """The training/evaluation trainer: checkpointing, early stopping, LR monitor, progress bar, CSV + TensorBoard."""
    tc = config.trainer_config
    return L.Trainer(
        **_common_kwargs(tc, accumulate_grad_batches),
        max_epochs=tc.max_epochs,
        max_steps=tc.max_steps,
        limit_train_batches=tc.limit_train_batches,
        limit_val_batches=tc.limit_val_batches,
        limit_test_batches=tc.limit_test_batches,
        val_check_interval=tc.val_check_interval,
        num_sanity_val_steps=tc.num_sanity_val_steps,
        log_every_n_steps=tc.log_every_n_steps,
        enable_progress_bar=tc.enable_progress_bar,
        enable_checkpointing=tc.checkpoint.enabled,
        callbacks=[*build_callbacks(tc), *wandb_callbacks(config), *(extra_callbacks or [])],
        logger=build_loggers(config) or False,
    )


def build_loggers(config: ExperimentConfig) -> list[Logger]:
    """The loggers ``trainer_config.loggers`` names, in its order (checkpoints go beside the first one's logs)."""
    tc = config.trainer_config
    makers = {
        "csv": lambda: CSVLogger(save_dir=str(tc.log_dir / "csv"), name=config.run_name),
        "tensorboard": lambda: TensorBoardLogger(save_dir=str(tc.log_dir / "tensorboard"), name=config.run_name),
        "wandb": lambda: wandb_logger(config),
    }
    return [makers[name]() for name in dict.fromkeys(tc.loggers)]


def build_tuning_trainer(config: ExperimentConfig, accumulate_grad_batches: int | None = None) -> L.Trainer:
    """A bare trainer for the tuner: same precision/devices/accumulation, no loggers, checkpoints or validation.

    Tuning runs on its own trainer so that nothing it does (step counters, callbacks' state, a search cut short
    by ``max_epochs``) leaks into the real fit. The epoch limit is lifted (the tuner bounds its own steps) and
    validation is off because a range test has no use for it.
    """
    tc = config.trainer_config
    evaluating = config.stage != "train"
    return L.Trainer(
        **_common_kwargs(tc, accumulate_grad_batches),
        max_epochs=1000,
        limit_val_batches=tc.limit_val_batches if evaluating else 0,
        limit_test_batches=tc.limit_test_batches,
        num_sanity_val_steps=0,
        enable_progress_bar=tc.enable_progress_bar,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=False,
        callbacks=[],
    )


def check_accelerator(config: TrainerConfig) -> None:
    """Refuse, in one line, an accelerator this machine does not have.

    Lightning would refuse it too, with a traceback, when the first ``Trainer`` is built: after the data (minutes,
    for a real dataset) and the model. The GPU configs name ``accelerator = "gpu"`` and ``precision = "16-mixed"``.
    """
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    name, devices = config.accelerator, config.devices
    to_cpu = "set --trainer_config.accelerator=cpu --trainer_config.precision=32-true (or edit [trainer_config])"
    if name in ("cuda", "gpu") and not (
        CUDAAccelerator.is_available() or (name == "gpu" and MPSAccelerator.is_available())
    ):
        raise ConfigError(f"trainer_config.accelerator = {name!r}, but torch finds no GPU on this machine; {to_cpu}.")
    if name == "mps" and not MPSAccelerator.is_available():
        raise ConfigError(
            f"trainer_config.accelerator = 'mps', but torch finds no Apple GPU on this machine; {to_cpu}."
        )
    cuda = name == "cuda" or (name == "gpu" and CUDAAccelerator.is_available())
    if cuda and isinstance(devices, int) and devices > CUDAAccelerator.auto_device_count():
        raise ConfigError(
            f"trainer_config.devices = {devices}, but this machine has {CUDAAccelerator.auto_device_count()} CUDA "
            "GPU(s); lower devices (or 'auto')."
        )


def build_trial_trainer(
    config: ExperimentConfig,
    *,
    max_steps: int,
    accumulate_grad_batches: int,
    val_check_interval: int,
    callbacks: list[Callback],
) -> L.Trainer:
    """A bare trainer for one LR-confirmation trial (``tuning/confirm/trial_training.py``): training's settings,
    ``max_steps`` optimizer steps, validation every ``val_check_interval`` training batches; no loggers, checkpoints,
    early stopping or progress bar (the confirmation shows one bar over its trials)."""
    tc = config.trainer_config
    return L.Trainer(
        **_common_kwargs(tc, accumulate_grad_batches),
        max_steps=max_steps,
        max_epochs=-1,
        limit_train_batches=tc.limit_train_batches,
        limit_val_batches=tc.limit_val_batches,
        val_check_interval=val_check_interval,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=False,
        callbacks=callbacks,
    )
