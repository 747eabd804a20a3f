"""Fine-tuning's parameter groups and freezing: the head at the LR, the backbone at ratios of it, or frozen.

Every parameter gets an LR scale: 1 for the head (the classifier), ``backbone_lr_scale`` x ``layer_decay`` ** (depth
below the top) for the backbone -- BEiT's layer-wise decay (Bao et al. 2022), fastai's discriminative LRs. timm models
are layered by timm's own ``param_groups_layer_decay`` (its ``group_matcher``); torchvision models and ``tiny_cnn`` by
the stages of the backbone registry (``models/backbones.py``). Inside each scale the weight-decay split is kept (no
decay on biases and normalisation scales). The head's groups come first: the LR finders sweep the first group's LR
and keep every other group at its ratio to it (``traenslenzor.tuner``), so the suggestion is the head's LR.
``CarryHeadState`` carries the head's optimizer state from the frozen phase into the whole-model one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import lightning as L
from torch import nn

from traenslenzor.doc_classifier.config import FinetuneConfig
from traenslenzor.doc_classifier.models.backbones import BACKBONES
from traenslenzor.doc_classifier.models.timm_backbones import is_timm_backbone, timm_head_names

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def head_names(backbone: str, model: nn.Module) -> tuple[str, ...]:
    """The classifier's module names: timm's ``get_classifier()``, else the registry's ``head``."""
    if is_timm_backbone(backbone):
        return timm_head_names(model)
    return BACKBONES[backbone].head


def _in_head(name: str, heads: tuple[str, ...]) -> bool:
    return any(name == head or name.startswith(f"{head}.") for head in heads)


def _decay_scales(backbone: str, model: nn.Module, layer_decay: float) -> dict[str, float]:
    """``{parameter name: layer_decay ** (depth below the top)}``; the top stage of the backbone is 1."""
    names = [name for name, _ in model.named_parameters()]
    if layer_decay == 1.0:
        return dict.fromkeys(names, 1.0)
    if is_timm_backbone(backbone):
        from timm.optim import param_groups_layer_decay

        by_id = {id(p): name for name, p in model.named_parameters()}
        scales = {}
        frozen = [p for p in model.parameters() if not p.requires_grad]
        for param in frozen:  # timm groups trainable parameters only: ask about all of them
            param.requires_grad_(True)
        try:
            for group in param_groups_layer_decay(model, 0.0, layer_decay=layer_decay):
                scales.update({by_id[id(p)]: group["lr_scale"] for p in group["params"]})
        finally:
            for param in frozen:
                param.requires_grad_(False)
        top = max((s for n, s in scales.items() if not _in_head(n, timm_head_names(model))), default=1.0)
        return {name: min(1.0, scale / top) for name, scale in scales.items()}
    stage = BACKBONES[backbone].stage
    depth = {name: stage(name) for name in names if not _in_head(name, BACKBONES[backbone].head)}
    last = max(depth.values(), default=0)
    return {name: layer_decay ** (last - depth.get(name, last)) for name in names}


def lr_scales(backbone: str, model: nn.Module, finetune: FinetuneConfig) -> dict[str, float]:
    """Each parameter's LR as a multiple of the head's."""
    heads = head_names(backbone, model)
    if not heads and finetune.backbone_lr_scale * finetune.layer_decay != 1.0:
        raise ValueError(f"{backbone}: no classifier head found to keep at the full LR; set backbone_lr_scale = 1.")
    decay = _decay_scales(backbone, model, finetune.layer_decay)
    return {
        name: 1.0 if _in_head(name, heads) else finetune.backbone_lr_scale * decay[name]
        for name, _ in model.named_parameters()
    }


def parameter_groups(
    backbone: str, model: nn.Module, finetune: FinetuneConfig, weight_decay: float, learning_rate: float
) -> list[dict[str, Any]]:
    """The optimizer's groups: one per (LR scale, decayed or not), head first, each with ``lr`` = scale x LR.

    Frozen parameters are left out. Each group carries its ``lr_scale``: OneCycle's ``max_lr`` per group and the
    logs read it.
    """
    scales = lr_scales(backbone, model, finetune)
    groups: dict[tuple[float, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decayed = param.ndim >= 2
        key = (scales[name], decayed)
        group = groups.setdefault(
            key,
            {"params": [], "weight_decay": weight_decay if decayed else 0.0, "lr_scale": key[0]},
        )
        group["params"].append(param)
    ordered = sorted(groups.items(), key=lambda item: (-item[0][0], not item[0][1]))  # head, decayed first
    return [{**group, "lr": learning_rate * group["lr_scale"]} for _, group in ordered]


@dataclass(frozen=True)
class GroupLRs:
    """The head's LR and the lowest group's, as read from an optimizer's groups (what the logs show)."""

    head: float
    lowest: float
    groups: int

    @classmethod
    def of(cls, param_groups: list[dict[str, Any]], key: str = "lr") -> GroupLRs:
        values = [float(group[key]) for group in param_groups]
        return cls(values[0], min(values), len(values))


def set_backbone_frozen(backbone: str, model: nn.Module, *, frozen: bool, train_bn: bool = True) -> int:
    """Freeze (or unfreeze) every parameter outside the head; returns how many tensors are frozen now.

    With ``train_bn`` the BatchNorm layers stay trainable while frozen (their scales, shifts and statistics), as
    fastai and Lightning's ``BackboneFinetuning`` do; without, :func:`hold_frozen_norms` keeps their statistics.
    """
    heads = head_names(backbone, model)
    if frozen and not heads:
        raise ValueError(f"{backbone}: no classifier head found to train while the backbone is frozen.")
    keep = {id(p) for m in model.modules() if train_bn and isinstance(m, _NORMS[0]) for p in m.parameters()}
    count = 0
    for name, param in model.named_parameters():
        trainable = not frozen or _in_head(name, heads) or id(param) in keep
        param.requires_grad_(trainable)
        count += not trainable
    return count


def hold_frozen_norms(model: nn.Module) -> None:
    """BatchNorm layers whose parameters are all frozen go to eval mode: their running statistics stay put.

    Lightning puts the whole model in train mode at every epoch (and after validation); the module calls this at
    every training batch.
    """
    for module in model.modules():
        if isinstance(module, _NORMS[0]):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def lowest_lr_scale(module: nn.Module) -> float:
    """The lowest LR scale among a ``DocClassifier``'s trainable parameters (1 with one LR)."""
    config = module.config
    scales = lr_scales(config.backbone, module.model, config.finetune)
    trainable = [scales[name] for name, p in module.model.named_parameters() if p.requires_grad]
    return min(trainable, default=1.0)


class CarryHeadState(L.Callback):
    """The head's optimizer state (AdamW's moments, SGD's momentum) from the frozen phase into the whole-model phase,
    as fastai's ``fine_tune`` keeps its optimizer across the unfreeze; the backbone's groups start fresh."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = trainer.optimizers[0].state
        heads = head_names(pl_module.config.backbone, pl_module.model)
        self.saved = {
            name: copy.deepcopy(state[param])
            for name, param in pl_module.model.named_parameters()
            if param in state and _in_head(name, heads)
        }

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        for name, param in pl_module.model.named_parameters():
            if name in self.saved and param not in optimizer.state:
                optimizer.state[param] = self.saved[name]
