"""Document-image data: synthetic RVL-CDIP-style pages, real RVL-CDIP loaders and the Lightning DataModule.

``DataModuleConfig`` is the ``[datamodule_config]`` TOML section; ``DocDataModule(config)`` serves the loaders.
"""

from __future__ import annotations

from .classes import CONFUSABLE_PAIRS, NUM_CLASSES, RVL_CDIP_CLASSES, class_index
from .config import DataModuleConfig
from .datamodule import DocDataModule, TransformedPages, open_split
from .page_io import DatasetLayoutError
from .synthetic import LAYOUTS, SyntheticDocuments, render_page, render_sample

__all__ = [
    "CONFUSABLE_PAIRS",
    "LAYOUTS",
    "NUM_CLASSES",
    "RVL_CDIP_CLASSES",
    "DataModuleConfig",
    "DatasetLayoutError",
    "DocDataModule",
    "SyntheticDocuments",
    "TransformedPages",
    "class_index",
    "open_split",
    "render_page",
    "render_sample",
]
