"""The synthetic page generator: RVL-CDIP-style documents, one layout per class, with scan artefacts.

``generator.py`` renders a page from ``(seed, split, index, image_size, artefact_strength)``; the layouts
(``layouts_*.py``) draw it from shared parts (``layout_parts.py``) on a ``drawing.Page``; ``artefacts.py``
simulates the scan; ``dataset.py`` serves a split as a cached map-style dataset. The real RVL-CDIP loaders live
beside this package (``rvl_cdip.py``, ``hf_dataset.py``).
"""

from __future__ import annotations

from .dataset import SyntheticDocuments
from .generator import GENERATOR_VERSION, LAYOUTS, label_of, page_rng, render_page, render_sample

__all__ = [
    "GENERATOR_VERSION",
    "LAYOUTS",
    "SyntheticDocuments",
    "label_of",
    "page_rng",
    "render_page",
    "render_sample",
]
