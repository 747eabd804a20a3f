"""torchvision v2 transform presets for document pages: ``train``, ``train_heavy`` and ``val``.

Inputs are ``uint8`` tensors ``(1, H, W)``. Every preset resizes to the square output size (a no-op when the
page already has it), scales to [0, 1], repeats gray to RGB for pretrained backbones and normalises with the
dataset's mean/std. Augmentations are small on purpose: documents are never mirrored and barely rotated, since
a flipped letter is not a letter any more.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

PRESETS = ("train", "train_heavy", "val")

_PAPER = 255  # fill for pixels that geometric augmentations uncover: white paper, as a scanner shows


def _augmentations(preset: str) -> list[v2.Transform]:
    """The random part of a preset, applied to ``uint8`` pages before scaling.

    They run on PIL images: torchvision's PIL kernels for affine warps and colour jitter are single-threaded
    C and ~100x faster on one small page than the tensor kernels, whose intra-op threading only adds
    overhead at this size (measured: 25 ms vs 0.15 ms per 64 px page under load). Blur is left to the
    generator's scan artefacts for the same reason (the tensor blur kernel costs ~10 ms a page).
    """
    if preset == "val":
        return []
    if preset == "train":
        affine = v2.RandomAffine(degrees=1.5, translate=(0.02, 0.02), scale=(0.96, 1.04), fill=_PAPER)
        return [v2.ToPILImage(), affine, v2.ToImage()]
    if preset == "train_heavy":
        affine = v2.RandomAffine(
            degrees=4, translate=(0.05, 0.05), scale=(0.88, 1.08), shear=(-3, 3, -2, 2), fill=_PAPER
        )
        return [v2.ToPILImage(), affine, v2.ColorJitter(brightness=0.25, contrast=0.35), v2.ToImage()]
    raise ValueError(f"unknown transform preset {preset!r}; expected one of {PRESETS}")


def build_transform(preset: str, image_size: int, channels: int, mean: float, std: float) -> Callable:
    """The transform for ``preset`` producing ``(channels, image_size, image_size)`` normalised float pages."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB for pretrained backbones), got {channels}")
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    steps: list[v2.Transform] = [v2.Resize((image_size, image_size), antialias=True)]
    steps += _augmentations(preset)
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if channels == 3:
        steps.append(v2.Grayscale(num_output_channels=3))
    steps.append(v2.Normalize(mean=[mean] * channels, std=[std] * channels))
    if preset == "train_heavy":
        steps.append(v2.RandomErasing(p=0.25, scale=(0.01, 0.05), value=0.0))
    return v2.Compose(steps)


def pixel_stats(pages: torch.Tensor) -> tuple[float, float]:
    """Mean and std of ``uint8`` pages scaled to [0, 1] (the statistics ``Normalize`` needs)."""
    if pages.numel() == 0:
        raise ValueError("cannot measure pixel statistics of an empty set of pages")
    x = pages.to(torch.float64) / 255.0
    std = float(x.std())
    return float(x.mean()), max(std, 1e-3)
