"""``DocDataModule``: train/val/test document-image loaders for Lightning, from synthetic or real RVL-CDIP.

The batch-size tuner writes ``datamodule.hparams.batch_size`` (as Lightning's does), so every dataloader call
reads the batch size from ``hparams`` at that moment, never a copy taken at construction. The data source is
checked when the module is built (cheap path checks, no image opened), so a missing dataset fails before any
tuning or training starts, and never falls back to other data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .classes import NUM_CLASSES, RVL_CDIP_CLASSES
from .config import DataModuleConfig
from .synthetic import SyntheticDocuments
from .transforms import build_transform, pixel_stats

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
_STATS_SAMPLE = 256


class TransformedPages(Dataset):
    """Applies a transform to the ``(page, label)`` pairs of a raw page dataset."""

    def __init__(self, pages: Dataset, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.pages, self.transform = pages, transform

    def __len__(self) -> int:
        return len(self.pages)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        page, label = self.pages[index]
        return self.transform(page), label


def check_source(config: DataModuleConfig) -> None:
    """Fail fast (paths only) when the configured real dataset is missing or laid out differently."""
    if config.source == "rvl_cdip":
        from .rvl_cdip import check_layout

        check_layout(config.root)  # type: ignore[arg-type]
    elif config.source == "hf_rvl_cdip":
        from .hf_dataset import load_split

        load_split(config.root, "train")  # type: ignore[arg-type]


def open_split(config: DataModuleConfig, split: str, limit: int | None = None, cache: bool | None = None) -> Dataset:
    """The raw ``(uint8 page, label)`` dataset of ``split``; ``limit`` overrides the config's sample limit."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    limit = limit if limit is not None else getattr(config, f"limit_{split}_samples")
    if config.source == "synthetic":
        size = getattr(config, f"synthetic_{split}_size")
        cache = config.cache_in_memory if cache is None else cache
        return SyntheticDocuments(
            split,
            min(size, limit or size),
            config.image_size,
            config.seed,
            config.synthetic_artefact_strength,
            cache_in_memory=cache,
            cache_dir=config.cache_dir if cache else None,
        )
    if config.source == "rvl_cdip":
        from .rvl_cdip import RvlCdipPages

        return RvlCdipPages(config.root, split, config.image_size, limit, config.seed)  # type: ignore[arg-type]
    from .hf_dataset import HFRvlCdipPages

    return HFRvlCdipPages(config.root, split, config.image_size, limit, config.seed)  # type: ignore[arg-type]


def measure_stats(pages: Dataset, limit: int = _STATS_SAMPLE) -> tuple[float, float]:
    """Pixel mean/std over (a spread-out sample of at most ``limit`` of) the pages of a raw dataset."""
    n = len(pages)  # type: ignore[arg-type]
    picks = np.unique(np.linspace(0, n - 1, min(n, limit)).astype(int))
    return pixel_stats(torch.stack([pages[int(i)][0] for i in picks]))


class DocDataModule(L.LightningDataModule):
    """Document pages for a 16-class classifier: ``num_classes``, ``in_channels`` and the three loaders."""

    num_classes: int = NUM_CLASSES
    classes: tuple[str, ...] = RVL_CDIP_CLASSES

    def __init__(self, config: DataModuleConfig | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__()
        if isinstance(config, DataModuleConfig):
            config = config.model_dump() if overrides else config
        if not isinstance(config, DataModuleConfig):
            config = DataModuleConfig(**{**dict(config or {}), **overrides})
        self.config = config
        # hparams.batch_size is where the batch-size tuner reads and writes the training batch size.
        self.save_hyperparameters(config.model_dump(mode="json"))
        check_source(config)
        self._pages: dict[str, Dataset] = {}
        self._datasets: dict[str, TransformedPages] = {}
        self.mean: float | None = config.mean
        self.std: float | None = config.std

    @property
    def in_channels(self) -> int:
        return self.config.channels

    # --- setup ---------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Render synthetic splits into ``cache_dir`` once (Lightning runs this on one process only)."""
        if self.config.source == "synthetic" and self.config.cache_dir is not None:
            for split in SPLITS:
                open_split(self.config, split)

    def setup(self, stage: str | None = None) -> None:
        """Open the splits ``stage`` needs (idempotent: the tuner's repeated fits reuse them)."""
        splits = _STAGE_SPLITS.get(stage, SPLITS) if stage else SPLITS
        for split in splits:
            if split not in self._pages:
                self._pages[split] = open_split(self.config, split)
        self._ensure_stats()
        for split in splits:
            if split not in self._datasets:
                preset = self.config.train_transform if split == "train" else "val"
                transform = build_transform(preset, self.config.image_size, self.config.channels, self.mean, self.std)  # type: ignore[arg-type]
                self._datasets[split] = TransformedPages(self._pages[split], transform)

    def _ensure_stats(self) -> None:
        if self.mean is not None and self.std is not None:
            return
        pages = self._pages.get("train")
        if pages is None:  # e.g. stage "test" alone: a small uncached sample of the training split suffices
            pages = open_split(self.config, "train", limit=_STATS_SAMPLE, cache=False)
        self.mean, self.std = measure_stats(pages)
        logger.info(
            "Pixel statistics of %d training pages: mean=%.4f std=%.4f",
            min(len(pages), _STATS_SAMPLE),
            self.mean,
            self.std,
        )  # type: ignore[arg-type]

    def normalisation(self) -> tuple[float, float]:
        """The pixel mean and std every split is normalised with (measured on training pages if not known yet)."""
        self._ensure_stats()
        return self.mean, self.std  # type: ignore[return-value]

    # --- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The pixel statistics the model sees, saved in every checkpoint: evaluating it later normalises as
        training did, not with statistics measured again on another sample of the training pages."""
        return {} if self.mean is None else {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the checkpoint's pixel statistics (Lightning calls this when given ``ckpt_path``, after ``setup``
        and before it asks for the dataloaders)."""
        if "mean" not in state_dict or (state_dict["mean"], state_dict["std"]) == (self.mean, self.std):
            return
        # ``setup`` may have measured statistics already: the checkpoint's win.
        replaced = "" if self.mean is None else f" (used instead of mean={self.mean:.4f} std={self.std:.4f})"
        self.mean, self.std = float(state_dict["mean"]), float(state_dict["std"])
        self._datasets.clear()  # any built with other statistics are built again on first use
        logger.info("Pixel statistics from the checkpoint: mean=%.4f std=%.4f%s", self.mean, self.std, replaced)

    def dataset(self, split: str) -> TransformedPages:
        """The transformed dataset of ``split`` (sets up its stage on first use)."""
        if split not in self._datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        return self._datasets[split]

    # --- loaders -------------------------------------------------------------------------------------------
    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        workers = self.config.num_workers
        return DataLoader(
            self.dataset(split),
            batch_size=int(batch_size),
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=self.config.persistent_workers and workers > 0,
            pin_memory=self.config.pin_memory,
        )

    def _eval_batch_size(self) -> int:
        return self.hparams.get("eval_batch_size") or self.hparams.batch_size

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self._eval_batch_size(), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self._eval_batch_size(), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", self._eval_batch_size(), shuffle=False)
