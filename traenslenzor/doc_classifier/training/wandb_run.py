"""Weights & Biases, optional: ``[trainer_config] loggers = ["csv", "tensorboard", "wandb"]``.

Lightning's ``WandbLogger`` records the run's metrics and hyper-parameters beside the CSV and TensorBoard logs, in
``<log_dir>/wandb/``. :class:`TuningFilesToWandb` adds what tuning produced: the LR finder plot, the LR confirm plot
where there is one, and the tuning record, as images and as one artifact of the run; after ``--stage val/test``,
the per-class table and the confusion matrix too. ``[trainer_config.wandb] offline = true`` (or
``WANDB_MODE=offline``) keeps everything on disk, for ``wandb sync`` later; nothing needs the network then.

``wandb`` is an extra (``pip install -e ".[wandb]"``); a config that asks for it without it installed is refused
before any data is built (:func:`require_wandb`). The package is imported only when a run uses it.
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from traenslenzor.doc_classifier.config import ConfigError, ExperimentConfig

CONFIRM_PLOT_NAME = "lr_confirm_plot.png"  # written beside the LR finder plot by the LR confirm step


def wants_wandb(config: ExperimentConfig) -> bool:
    return "wandb" in config.trainer_config.loggers


def require_wandb(config: ExperimentConfig) -> None:
    """Refuse, naming the extra, a config that logs to W&B where the ``wandb`` package is not installed."""
    if wants_wandb(config) and importlib.util.find_spec("wandb") is None:
        raise ConfigError(
            'trainer_config.loggers names "wandb" but the wandb package is not installed: pip install -e ".[wandb]" '
            '(or remove "wandb" from loggers).'
        )


def wandb_logger(config: ExperimentConfig) -> Any:
    """Lightning's ``WandbLogger`` for this run, writing under ``<log_dir>/wandb/``."""
    from lightning.pytorch.loggers import WandbLogger

    settings = config.trainer_config.wandb
    return WandbLogger(
        name=config.run_name,
        project=settings.project,
        entity=settings.entity,
        save_dir=str(config.trainer_config.log_dir),
        offline=settings.offline,
        log_model=False,  # checkpoints stay on disk; they can be large
    )


def tuning_files(config: ExperimentConfig) -> list[Path]:
    """The tuning outputs of this config that exist: LR plot, LR confirm plot, tuning record."""
    tc = config.tuner_config
    candidates = [tc.plot_path, tc.plot_path.parent / CONFIRM_PLOT_NAME, tc.results_path]
    return [path for path in candidates if path.is_file()]


def evaluation_files(config: ExperimentConfig) -> list[Path]:
    """The per-class table and confusion matrix that ``--stage val/test`` writes (``inference/evaluation.py``)."""
    log_dir = config.trainer_config.log_dir
    names = [f"per_class_{config.stage}.csv", f"confusion_matrix_{config.stage}.png"]
    return [log_dir / name for name in names if (log_dir / name).is_file()]


def _artifact_name(run_name: str, kind: str) -> str:
    return re.sub(r"[^\w.-]", "-", f"{run_name}-{kind}")


class TuningFilesToWandb(Callback):
    """Logs the tuning files when training starts and the evaluation files when it ends, then closes the W&B run.

    Files are logged as images (the PNGs, under ``tuning/`` and ``evaluation/``) and as one artifact each time.
    Evaluation files older than this run (left by an earlier one) are not logged.
    """

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.started = time.time()

    @staticmethod
    def _logger(trainer: L.Trainer) -> Any:
        from lightning.pytorch.loggers import WandbLogger

        return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)

    def _log(self, logger: Any, files: list[Path], kind: str) -> None:
        import wandb

        for path in files:
            if path.suffix == ".png":
                logger.log_image(key=f"{kind}/{path.stem}", images=[str(path)])
        artifact = wandb.Artifact(_artifact_name(self.config.run_name, kind), type=kind)
        for path in files:
            artifact.add_file(str(path), name=path.name)
        logger.experiment.log_artifact(artifact)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = self._logger(trainer)
        files = tuning_files(self.config) if self.config.stage == "train" else []
        if trainer.is_global_zero and logger is not None and files:
            self._log(logger, files, "tuning")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = self._logger(trainer)
        if not trainer.is_global_zero or logger is None:
            return
        files = [path for path in evaluation_files(self.config) if path.stat().st_mtime >= self.started]
        if files:
            self._log(logger, files, "evaluation")
        logger.experiment.finish()  # flush to disk now (offline) or upload, not at interpreter exit


def wandb_callbacks(config: ExperimentConfig) -> list[Callback]:
    return [TuningFilesToWandb(config)] if wants_wandb(config) else []
