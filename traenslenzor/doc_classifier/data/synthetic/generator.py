"""Synthetic RVL-CDIP-style documents: one layout per class, rendered at the output size, with scan artefacts.

Every page is a pure function of ``(seed, split, index, image_size, artefact_strength)``: its random generator
is seeded from those, never from global state, so the same page comes out in any worker process and any order.
Labels cycle through the 16 classes (``index % 16``), so every split is balanced.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..classes import NUM_CLASSES, RVL_CDIP_CLASSES
from . import layouts_correspondence as corr
from . import layouts_forms as forms
from . import layouts_pages as pages
from .artefacts import scan
from .drawing import Page
from .layout_parts import clutter

# Bump when a change to layouts or artefacts changes the pixels; on-disk caches key on it.
GENERATOR_VERSION = 1

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}

Layout = Callable[[Page], None]

LAYOUTS: dict[str, Layout] = {
    "letter": corr.letter,
    "form": forms.form,
    "email": corr.email,
    "handwritten": corr.handwritten,
    "advertisement": pages.advertisement,
    "scientific report": pages.scientific_report,
    "scientific publication": pages.scientific_publication,
    "specification": forms.specification,
    "file folder": pages.file_folder,
    "news article": pages.news_article,
    "budget": forms.budget,
    "invoice": forms.invoice,
    "presentation": pages.presentation,
    "questionnaire": forms.questionnaire,
    "resume": corr.resume,
    "memo": corr.memo,
}
if tuple(LAYOUTS) != RVL_CDIP_CLASSES:
    raise RuntimeError("LAYOUTS must list the classes in RVL-CDIP label order")


def page_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of one page; independent of worker, order and every other page."""
    if split not in SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_CODES)}")
    return np.random.default_rng([seed, SPLIT_CODES[split], index])


def label_of(index: int) -> int:
    """Class of the page at ``index``: the classes cycle, so any prefix of a split is balanced."""
    return index % NUM_CLASSES


def render_page(label: int, image_size: int, rng: np.random.Generator, artefact_strength: float = 1.0) -> np.ndarray:
    """Render one page of class ``label`` as an ``(image_size, image_size)`` ``uint8`` array (255 = paper)."""
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label must be in [0, {NUM_CLASSES - 1}], got {label}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    page = Page(image_size, rng)
    LAYOUTS[RVL_CDIP_CLASSES[label]](page)
    clutter(page)
    return scan(page.image, rng, artefact_strength)


def render_sample(
    seed: int, split: str, index: int, image_size: int, artefact_strength: float = 1.0
) -> tuple[np.ndarray, int]:
    """Page ``index`` of ``split`` and its label."""
    label = label_of(index)
    return render_page(label, image_size, page_rng(seed, split, index), artefact_strength), label
