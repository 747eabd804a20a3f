"""Backbones from timm, the field's model library: ``backbone = "timm/<name>"`` for any model timm knows.

The settings travel through timm's own arguments of ``timm.create_model``: ``num_classes``, ``in_chans`` (timm
adapts a pretrained stem to the channel count itself, summing RGB filters for grayscale), ``drop_rate`` (the dropout
before the classifier) and, for models that take one (ViTs and their kin), ``img_size``. A name may carry timm's
pretrained tag (``timm/resnet18.a1_in1k``); without one timm picks its default weights. timm is imported lazily: the
torchvision backbones never pay its import.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

TIMM_PREFIX = "timm/"


def is_timm_backbone(backbone: str) -> bool:
    return backbone.startswith(TIMM_PREFIX)


def timm_name(backbone: str) -> str:
    """``"timm/resnet18.a1_in1k"`` -> ``"resnet18.a1_in1k"``."""
    return backbone.removeprefix(TIMM_PREFIX)


def check_timm_backbone(backbone: str) -> str:
    """``backbone`` when timm knows its architecture; else a ValueError naming the closest names timm has."""
    import timm

    name = timm_name(backbone)
    architecture = name.split(".", 1)[0]
    if architecture and timm.is_model(architecture):
        return backbone
    close = difflib.get_close_matches(architecture, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
    raise ValueError(
        f"timm has no model {name!r} (backbone {backbone!r}){hint} Any name of timm.list_models() works, "
        'e.g. "timm/resnet18", "timm/convnext_atto", "timm/vit_tiny_patch16_224".'
    )


def build_timm(
    backbone: str, num_classes: int, in_channels: int, dropout: float, image_size: int, *, pretrained: bool = False
) -> nn.Module:
    """``timm.create_model`` with this app's settings; ``pretrained`` loads timm's weights from its cache."""
    import timm

    name = timm_name(backbone)
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_channels, "drop_rate": dropout}
    try:
        return timm.create_model(name, pretrained=pretrained, img_size=image_size, **kwargs)
    except TypeError as exc:
        # Convolutional networks take any size and refuse the argument; ViTs need it for their position grid.
        if "img_size" not in str(exc):
            raise
    return timm.create_model(name, pretrained=pretrained, **kwargs)


def timm_head_names(model: nn.Module) -> tuple[str, ...]:
    """The dotted names of the classifier module(s) of a timm model (``fc``, ``head.fc``, ``head``, ...)."""
    classifier = model.get_classifier()
    if isinstance(classifier, nn.Identity) or not any(True for _ in classifier.parameters()):
        return ()
    for name, module in model.named_modules():
        if module is classifier:
            return (name,)
    return ()
