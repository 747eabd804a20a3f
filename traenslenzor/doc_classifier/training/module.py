"""The LightningModule: a backbone trained with cross-entropy, AdamW or SGD, and OneCycleLR per optimizer step.

The learning rate lives at ``hparams.learning_rate`` and OneCycle's peak at ``hparams.max_lr``: the LR finder
writes the former (Lightning's attribute lookup finds it), the experiment sets the latter to
``max_lr_factor`` x the found LR, and ``configure_optimizers`` reads both at the start of every fit -- so tuned values
take effect without rebuilding the module. Both are the head's: with ``[module_config.finetune]`` the backbone's groups
run at fixed ratios of them (``finetune.py``), in the optimizer and in OneCycle's per-group ``max_lr`` alike.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from traenslenzor.doc_classifier.config import ConfigError, ModuleConfig, OptimizerConfig
from traenslenzor.doc_classifier.models.backbones import build_model
from traenslenzor.doc_classifier.training.finetune import hold_frozen_norms, set_backbone_frozen
from traenslenzor.doc_classifier.training.finetune import parameter_groups as finetune_groups


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weights of convolutions/linears only; biases and normalisation scales are not decayed."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module, config: OptimizerConfig, learning_rate: float, groups: list[dict[str, Any]] | None = None
) -> torch.optim.Optimizer:
    """AdamW or SGD over ``groups`` (default: one LR, the weight-decay split); a group's own ``lr`` wins."""
    groups = groups if groups is not None else parameter_groups(model, config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=learning_rate, betas=config.betas)
    return torch.optim.SGD(groups, lr=learning_rate, momentum=config.momentum, nesterov=config.nesterov)


class DocClassifier(L.LightningModule):
    """Document-image classifier over a configurable backbone.

    Args:
        module_config: the ``[module_config]`` section (a ``ModuleConfig`` or its dict, as saved in checkpoints).
        image_size: input resolution (ViT needs it to size its position embeddings).
        learning_rate: overrides ``module_config.optimizer.learning_rate`` (checkpoints store the tuned value).
        max_lr: OneCycle's peak LR; required when the scheduler is ``onecycle``.
    """

    def __init__(
        self,
        module_config: ModuleConfig | dict[str, Any],
        image_size: int = 224,
        learning_rate: float | None = None,
        max_lr: float | None = None,
    ) -> None:
        super().__init__()
        config = ModuleConfig.model_validate(module_config)
        if config.scheduler.name == "onecycle" and max_lr is None:
            raise ValueError("OneCycleLR needs max_lr (ExperimentConfig.onecycle_max_lr() computes it).")
        self.config = config
        self.save_hyperparameters(
            {
                "module_config": config.model_dump(mode="json"),
                "image_size": image_size,
                "learning_rate": learning_rate if learning_rate is not None else config.optimizer.learning_rate,
                "max_lr": max_lr,
            }
        )
        self.model = build_model(
            config.backbone,
            num_classes=config.num_classes,
            in_channels=config.in_channels,
            dropout=config.dropout,
            image_size=image_size,
            pretrained=config.pretrained,
            pretrained_weights=config.pretrained_weights if config.pretrained else None,
        )
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes=config.num_classes, average="micro"),
                "f1": MulticlassF1Score(num_classes=config.num_classes, average="macro"),
            }
        )
        # One collection per stage: sharing one would mix training and validation counts.
        self.stage_metrics = nn.ModuleDict(
            {f"{stage}_metrics": metrics.clone(prefix=f"{stage}/") for stage in ("train", "val", "test")}
        )

    def set_backbone_frozen(self, frozen: bool) -> int:
        """Freeze the backbone (the head alone trains; ``finetune.train_bn`` keeps BatchNorm training) or unfreeze
        it; returns the number of frozen tensors. The next fit's optimizer holds the trainable parameters only."""
        finetune = self.config.finetune
        return set_backbone_frozen(self.config.backbone, self.model, frozen=frozen, train_bn=finetune.train_bn)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        hold_frozen_norms(self.model)  # Lightning sets train mode each epoch: frozen BatchNorm statistics stay put

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _step(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and metrics of one batch, logged under ``stage``; returns the loss and the logits."""
        images, labels = batch[0], batch[1]
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        on_step = stage == "train"
        # Under DDP the evaluation loss is averaged over the processes (the metrics sync themselves); the training
        # loss stays per process, to spare an all-reduce per step.
        self.log(
            f"{stage}/loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(labels),
            sync_dist=not on_step,
        )
        metrics = self.stage_metrics[f"{stage}_metrics"]
        metrics.update(logits.detach(), labels)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss, logits.detach()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")[1]  # the logits, for callbacks (evaluation.PerClassEvaluation)

    def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")[1]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Note the length of a resumed OneCycle schedule; ``configure_optimizers`` checks it against this run's."""
        states = checkpoint.get("lr_schedulers") or [{}]
        self._resumed_onecycle_steps = states[0].get("total_steps")

    def configure_optimizers(self) -> Any:
        config, learning_rate = self.config, self.hparams.learning_rate
        groups = finetune_groups(
            config.backbone, self.model, config.finetune, config.optimizer.weight_decay, learning_rate
        )  # the head's groups first: the LR finder's suggestion is the head's LR
        optimizer = build_optimizer(self.model, config.optimizer, learning_rate, groups)
        scheduler = self.config.scheduler
        if scheduler.name == "none":
            return optimizer
        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps) or total_steps < 1:
            raise ValueError(
                "OneCycleLR needs a finite number of steps: set trainer_config.max_epochs or max_steps, or use "
                "module_config.scheduler.name = 'none'."
            )
        resumed = getattr(self, "_resumed_onecycle_steps", None)
        if resumed is not None and resumed != int(total_steps):
            raise ConfigError(
                f"ckpt_path: the checkpoint's OneCycle schedule spans {resumed} steps, this run's would span "
                f"{int(total_steps)}. OneCycle fixes its length when it is built, so resume with the run's own "
                "max_epochs/max_steps, batch_size and data (to finish an interrupted run), or start a new run "
                "without ckpt_path to train on a longer schedule."
            )
        onecycle = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[self.hparams.max_lr * group["lr_scale"] for group in optimizer.param_groups],  # ratios kept
            total_steps=int(total_steps),
            pct_start=scheduler.pct_start,
            anneal_strategy=scheduler.anneal_strategy,
            cycle_momentum=scheduler.cycle_momentum,
            base_momentum=scheduler.base_momentum,
            max_momentum=scheduler.max_momentum,
            div_factor=scheduler.div_factor,
            final_div_factor=scheduler.final_div_factor,
            three_phase=scheduler.three_phase,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": onecycle, "interval": "step"}}
