"""Decoding real scans into page tensors, and skipping the rare unreadable one instead of crashing an epoch.

RVL-CDIP ships at least one corrupt TIFF; a crash at step 30,000 of an epoch for one bad page would cost hours,
so a page that fails to decode is replaced by the next readable one, counted and logged (once per page).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)

# Errors a damaged or missing image file raises in Pillow (UnidentifiedImageError is an OSError; truncated
# data raises OSError or SyntaxError in some decoders; bad headers raise ValueError).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

_MAX_CONSECUTIVE_SKIPS = 16


class DatasetLayoutError(FileNotFoundError):
    """A real dataset is missing or not in the layout this package reads; the message says how to fix it."""


def decode_page(image: Image.Image, image_size: int) -> torch.Tensor:
    """A PIL image (any mode, any size) as a grayscale ``uint8`` tensor ``(1, image_size, image_size)``."""
    image.draft("L", (image_size, image_size))  # JPEG decodes at reduced scale directly; others ignore it
    gray = image.convert("L")
    if gray.size != (image_size, image_size):
        gray = gray.resize((image_size, image_size), Image.BILINEAR, reducing_gap=2.0)
    return torch.from_numpy(np.array(gray, dtype=np.uint8))[None]


def open_page(path: Path, image_size: int) -> torch.Tensor:
    """Read and decode one image file (the file is closed before returning)."""
    with Image.open(path) as image:
        return decode_page(image, image_size)


class SkippingPages(Dataset):
    """Base of real-data datasets: one split of a dataset under ``root``, whose ``__getitem__`` skips unreadable
    pages, counting them in ``skipped``.

    Subclasses call ``super().__init__(root, split, image_size, splits=...)`` (the split names they read), fill
    ``targets`` (one label a page) and implement ``__len__``, ``load(index) -> (page, label)`` and
    ``describe(index)``. With DataLoader workers each process keeps its own count; the warnings name every
    skipped page either way.
    """

    def __init__(self, root: Path, split: str, image_size: int, *, splits: Collection[str]) -> None:
        if split not in splits:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(splits)}")
        self.root, self.split, self.image_size = Path(root), split, image_size
        self.targets: list[int] = []
        self.skipped: set[int] = set()

    @property
    def labels(self) -> np.ndarray:
        """Label of every page, in index order."""
        return np.asarray(self.targets, dtype=np.int64)

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        return f"page {index}"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a split of {n} pages")
        for k in range(min(_MAX_CONSECUTIVE_SKIPS, n)):
            j = (index + k) % n
            try:
                return self.load(j)
            except DECODE_ERRORS as exc:
                if j not in self.skipped:
                    self.skipped.add(j)
                    logger.warning(
                        "Skipping unreadable image %s (%s: %s); %d skipped so far in this process",
                        self.describe(j),
                        type(exc).__name__,
                        exc,
                        len(self.skipped),
                    )
        raise RuntimeError(
            f"{min(_MAX_CONSECUTIVE_SKIPS, n)} consecutive images from {self.describe(index)} are unreadable; "
            "the dataset looks damaged or only partly copied: check the files, or re-extract the archive"
        )
