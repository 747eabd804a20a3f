"""Backbones for the document classifier: a registry of builders, and where their pretrained weights come from.

torchvision's AlexNet (Krizhevsky et al. 2012), ResNet-50 (He et al. 2016) and ViT-B/16 (Dosovitskiy et al. 2021),
``tiny_cnn`` (a small BatchNorm CNN for the CPU quickstart) and any timm model (``timm/<name>``,
``timm_backbones.py``). Pretrained weights come from a local file named in the config
(``module_config.pretrained_weights``: a state dict, a ``.safetensors`` file or one of this app's own ``.ckpt``), or,
without one, through the library's own mechanism and cache (``pretrained_weights.py``). A checkpoint saved for RGB
input is adapted to grayscale input by summing its first convolution over the colour channels, and a head of the
wrong shape (ImageNet's 1000 classes) is left freshly initialised. A file is opened as data
(``checkpoint_file.py``): one that needs more is refused.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import models as tv_models

from traenslenzor.doc_classifier.checkpoint_file import load_as_data
from traenslenzor.doc_classifier.models.pretrained_weights import describe_timm_weights, torchvision_state_dict
from traenslenzor.doc_classifier.models.timm_backbones import build_timm, is_timm_backbone

log = logging.getLogger(__name__)

# What to do about a weights file refused because opening it would run code (``checkpoint_file.py``).
WEIGHTS_REMEDY = "save just its tensors (torch.save(model.state_dict(), path)) where you trust the file, and use that"

BackboneBuilder = Callable[[int, int, float, int], nn.Module]
"""``builder(num_classes, in_channels, dropout, image_size) -> nn.Module``."""


def _replace_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """The same convolution with a different number of input channels (fresh weights)."""
    if conv.in_channels == in_channels:
        return conv
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
    )


def build_tiny_cnn(num_classes: int, in_channels: int, dropout: float, image_size: int) -> nn.Module:
    """Four conv-BN-ReLU-pool blocks (8 to 64 channels) and a linear head: trains in minutes on a laptop CPU.

    The last pooling keeps a 2x2 grid rather than one average: where on the page the dark blocks are (a
    letterhead at the top, a signature at the bottom) is most of what tells document layouts apart.
    """
    del image_size  # adaptive pooling makes the network size-agnostic

    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(
        block(in_channels, 8),
        block(8, 16),
        block(16, 32),
        block(32, 64),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(64 * 4, num_classes),
    )


def build_alexnet(num_classes: int, in_channels: int, dropout: float, image_size: int) -> nn.Module:
    """AlexNet from scratch; its adaptive pooling accepts any image size of at least 63 px."""
    if image_size < 63:
        raise ValueError(f"alexnet needs images of at least 63 px (got image_size={image_size}).")
    model = tv_models.alexnet(weights=None, num_classes=num_classes, dropout=dropout)
    model.features[0] = _replace_first_conv(model.features[0], in_channels)
    return model


def build_resnet50(num_classes: int, in_channels: int, dropout: float, image_size: int) -> nn.Module:
    """ResNet-50; torchvision has no dropout in it, so one goes before the classifier."""
    del image_size
    model = tv_models.resnet50(weights=None, num_classes=num_classes)
    model.conv1 = _replace_first_conv(model.conv1, in_channels)
    if dropout > 0:
        model.fc = nn.Sequential(nn.Dropout(dropout), model.fc)
    return model


def build_vit_b_16(num_classes: int, in_channels: int, dropout: float, image_size: int) -> nn.Module:
    """ViT-B/16 at the configured resolution (a multiple of 16)."""
    if image_size % 16:
        raise ValueError(f"vit_b_16 needs an image_size divisible by 16 (got {image_size}); 224 is standard.")
    model = tv_models.vit_b_16(weights=None, image_size=image_size, num_classes=num_classes, dropout=dropout)
    model.conv_proj = _replace_first_conv(model.conv_proj, in_channels)
    return model


def resample_vit_positions(state: dict[str, torch.Tensor], image_size: int) -> dict[str, torch.Tensor]:
    """A ViT-B/16 checkpoint with its position embeddings resampled (bicubic) to ``image_size`` if needed.

    The embeddings are a grid of one per 16 px patch (14 x 14 at 224 px) plus the class token. A checkpoint made
    at another size is resampled with torchvision's own ``interpolate_embeddings``, as torchvision does for its
    384 px weights, instead of being dropped.
    """
    key = "encoder.pos_embedding"
    embedding = state.get(key)
    if embedding is None or embedding.shape[1] == (image_size // 16) ** 2 + 1:
        return state
    from torchvision.models.vision_transformer import interpolate_embeddings

    return dict(interpolate_embeddings(image_size, 16, OrderedDict(state)))


@dataclass(frozen=True)
class Backbone:
    """One backbone: how to build it, and how a checkpoint for it is read.

    Attributes:
        build: ``build(num_classes, in_channels, dropout, image_size) -> nn.Module``.
        first_conv_key: the first convolution, as named in torchvision's checkpoints: the one tensor that is
            adapted (not dropped) when a checkpoint made for RGB meets grayscale input.
        prepare: checkpoint preparation before the tensors are matched, ``(state, image_size) -> state``.
        head: the classifier's module names: what fine-tuning trains at the head's LR, and keeps when frozen.
        stage: ``stage(parameter name) -> depth`` (0 = the stem) for layer-wise LR decay; the head is past the last.
        library: torchvision's model name, whose ``weights=`` enum gives ``pretrained = true`` its weights.
    """

    build: BackboneBuilder
    first_conv_key: str
    prepare: Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]] | None = None
    head: tuple[str, ...] = ()
    stage: Callable[[str], int] | None = None
    library: str | None = None


def _tiny_cnn_stage(name: str) -> int:
    """The four conv blocks are stages 0-3 (``0.*`` .. ``3.*``)."""
    return int(name.split(".", 1)[0])


def _alexnet_stage(name: str) -> int:
    """Five convolutions (``features.0/3/6/8/10``), then the two hidden linears (``classifier.1/4``)."""
    part, index = name.split(".")[:2]
    order = {"features": (0, 3, 6, 8, 10), "classifier": (-1, 1, 4)}[part]
    position = max(i for i, start in enumerate(order) if int(index) >= start)
    return position if part == "features" else 4 + position


def _resnet_stage(name: str) -> int:
    """The stem (``conv1``, ``bn1``) is stage 0, ``layer1`` .. ``layer4`` are 1-4."""
    return int(name[5]) if name.startswith("layer") else 0


def _vit_stage(name: str) -> int:
    """Patch embedding, class token and positions are stage 0, encoder block i is i + 1, the final norm 13."""
    if name.startswith("encoder.layers.encoder_layer_"):
        return int(name.split(".")[2].rsplit("_", 1)[1]) + 1
    return 13 if name.startswith("encoder.ln") else 0


# The one table of backbones: ``module_config.backbone`` names a key (or ``timm/<name>``, timm_backbones.py).
BACKBONES: dict[str, Backbone] = {
    "tiny_cnn": Backbone(build_tiny_cnn, "0.0.weight", head=("7",), stage=_tiny_cnn_stage),
    "alexnet": Backbone(
        build_alexnet, "features.0.weight", head=("classifier.6",), stage=_alexnet_stage, library="alexnet"
    ),
    "resnet50": Backbone(build_resnet50, "conv1.weight", head=("fc",), stage=_resnet_stage, library="resnet50"),
    "vit_b_16": Backbone(
        build_vit_b_16,
        "conv_proj.weight",
        prepare=resample_vit_positions,
        head=("heads",),
        stage=_vit_stage,
        library="vit_b_16",
    ),
}


@dataclass(frozen=True)
class WeightsReport:
    """What ``load_pretrained`` did with a checkpoint."""

    path: str
    loaded: tuple[str, ...]
    adapted: tuple[str, ...]  # first conv summed over input channels
    skipped: tuple[str, ...]  # shape mismatch (e.g. the ImageNet head) or absent from the model
    missing: tuple[str, ...]  # model tensors the checkpoint did not provide (left as initialised)


def build_model(
    backbone: str,
    *,
    num_classes: int,
    in_channels: int,
    dropout: float = 0.0,
    image_size: int = 224,
    pretrained: bool = False,
    pretrained_weights: str | Path | None = None,
) -> nn.Module:
    """Build a backbone by name; load ``pretrained_weights`` (a local file) when given, else, with ``pretrained``,
    the library's own weights (timm's hub cache, torchvision's ``weights=`` enum; ``pretrained_weights.py``)."""
    from_library = pretrained and pretrained_weights is None
    if is_timm_backbone(backbone):
        model = build_timm(backbone, num_classes, in_channels, dropout, image_size, pretrained=from_library)
        if from_library:
            log.info("Loaded timm's pretrained weights of %s (%s)", backbone, describe_timm_weights(backbone))
        first_conv = model.pretrained_cfg.get("first_conv") or ""
        entry = Backbone(lambda *args: model, f"{first_conv}.weight")
    else:
        entry = BACKBONES.get(backbone)
        if entry is None:
            raise ValueError(f"Unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)} or timm/<name>.")
        model = entry.build(num_classes, in_channels, dropout, image_size)
        if from_library:
            if entry.library is None:
                raise ValueError(f"{backbone} has no published weights; set module_config.pretrained_weights.")
            source, where = torchvision_state_dict(entry.library)
            _load_and_log(model, entry, source, where, image_size, in_channels)
    if pretrained_weights is not None:
        source = read_state_dict(pretrained_weights)
        _load_and_log(model, entry, source, str(pretrained_weights), image_size, in_channels)
    return model


def _load_and_log(
    model: nn.Module, entry: Backbone, source: dict[str, torch.Tensor], where: str, image_size: int, in_channels: int
) -> WeightsReport:
    prepare = entry.prepare
    report = load_state(
        model,
        source,
        where,
        first_conv_key=entry.first_conv_key,
        prepare=None if prepare is None else (lambda state: prepare(state, image_size)),
    )
    log.info(
        "Loaded %d tensors from %s (%d adapted to %d input channels, %d skipped, %d left initialised)",
        len(report.loaded),
        report.path,
        len(report.adapted),
        in_channels,
        len(report.skipped),
        len(report.missing),
    )
    return report


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local checkpoint: a plain state dict or one wrapped in ``state_dict``/``model``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Pretrained weights not found at {path}: point module_config.pretrained_weights at a local .pth, "
            ".safetensors or this app's .ckpt, remove it to use the library's own weights, or set "
            "module_config.pretrained = false to train from scratch."
        )
    if path.suffix == ".safetensors":  # timm's and the Hugging Face hub's own format
        from safetensors.torch import load_file

        return load_file(path)
    payload = load_as_data(path, setting="module_config.pretrained_weights", remedy=WEIGHTS_REMEDY)
    if isinstance(payload, dict) and "pytorch-lightning_version" in payload:
        return _backbone_of_app_checkpoint(payload, path)
    for key in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors.")
    return payload


def _backbone_of_app_checkpoint(payload: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The network's tensors of one of this app's Lightning checkpoints (``model.*`` in its ``state_dict``)."""
    state = payload.get("state_dict") or {}
    prefix = "model."
    tensors = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
    if not tensors:
        raise ValueError(f"{path} is a Lightning checkpoint without this app's model.* tensors.")
    return tensors


def load_pretrained(
    model: nn.Module,
    path: str | Path,
    *,
    first_conv_key: str,
    prepare: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> WeightsReport:
    """Copy the matching tensors of a local checkpoint into ``model`` (``load_state`` on the file's tensors)."""
    return load_state(model, read_state_dict(path), str(path), first_conv_key=first_conv_key, prepare=prepare)


def load_state(
    model: nn.Module,
    source: dict[str, torch.Tensor],
    path: str,
    *,
    first_conv_key: str,
    prepare: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> WeightsReport:
    """Copy the matching tensors of ``source`` (read from ``path``) into ``model``.

    A first convolution saved for 3 channels is summed over them for a 1-channel model (a grayscale image
    replicated to RGB gives the same response). ``prepare`` may adapt the checkpoint first (a ViT's position
    embeddings to another image size; tensors it reshapes are reported as adapted). Tensors whose shape still does
    not match -- the classifier head of an ImageNet checkpoint -- are skipped. Loading nothing at all is an error:
    the file belongs to another backbone.
    """
    adapted, skipped = [], []
    if prepare is not None:
        before = {key: tensor.shape for key, tensor in source.items()}
        source = prepare(source)
        adapted += [key for key, tensor in source.items() if key in before and tensor.shape != before[key]]
    target = model.state_dict()
    chosen: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        want = target.get(key)
        if want is None:
            skipped.append(key)
        elif tensor.shape == want.shape:
            chosen[key] = tensor
        elif (
            key == first_conv_key
            and want.shape[1] == 1
            and tensor.shape[:1] + tensor.shape[2:] == (want.shape[:1] + want.shape[2:])
        ):
            chosen[key] = tensor.sum(dim=1, keepdim=True)
            adapted.append(key)
        else:
            skipped.append(key)
    if not chosen:
        raise ValueError(f"No tensor of {path} matches this backbone; is it a checkpoint of a different architecture?")
    model.load_state_dict(chosen, strict=False)
    return WeightsReport(
        path=str(path),
        loaded=tuple(chosen),
        adapted=tuple(adapted),
        skipped=tuple(skipped),
        missing=tuple(k for k in target if k not in chosen),
    )
