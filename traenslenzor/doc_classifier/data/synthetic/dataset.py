"""``SyntheticDocuments``: a map-style dataset of rendered pages, cached in memory and optionally on disk.

Rendering costs ~2 ms a page on one core; an epoch re-reads each page many times, so a split is rendered once
(with a progress bar) and kept as one ``uint8`` array. With ``cache_dir`` the array is also written as ``.npy``
beside a ``manifest.json`` that records what produced it, so later runs (and other processes) load it in
milliseconds; an entry whose parameters or generator version differ is never reused.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from traenslenzor.doc_classifier.atomic_file import atomic_write

from .generator import GENERATOR_VERSION, SPLIT_CODES, label_of, render_sample

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class SyntheticDocuments(Dataset):
    """Pages ``0 .. length-1`` of one synthetic split, as ``(uint8 tensor (1, S, S), label)``."""

    def __init__(
        self,
        split: str,
        length: int,
        image_size: int,
        seed: int = 0,
        artefact_strength: float = 1.0,
        cache_in_memory: bool = True,
        cache_dir: Path | None = None,
    ) -> None:
        if split not in SPLIT_CODES:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_CODES)}")
        if length < 1:
            raise ValueError(f"a split needs at least one page, got length={length}")
        self.split, self.length, self.image_size = split, length, image_size
        self.seed, self.artefact_strength = seed, artefact_strength
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._pages: np.ndarray | None = None
        if cache_in_memory or self.cache_dir is not None:
            self._pages = self._load_or_render()

    @property
    def labels(self) -> np.ndarray:
        """Label of every page, in index order."""
        return np.array([label_of(i) for i in range(self.length)], dtype=np.int64)

    def key(self) -> dict[str, Any]:
        """Everything that determines the pixels of this split (the manifest entry)."""
        return {
            "generator_version": GENERATOR_VERSION,
            "split": self.split,
            "length": self.length,
            "image_size": self.image_size,
            "seed": self.seed,
            "artefact_strength": self.artefact_strength,
        }

    def __len__(self) -> int:
        return self.length

    def page(self, index: int) -> np.ndarray:
        """The ``(S, S)`` ``uint8`` page at ``index``."""
        if self._pages is not None:
            return self._pages[index]
        return render_sample(self.seed, self.split, index, self.image_size, self.artefact_strength)[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a split of {self.length} pages")
        return torch.from_numpy(np.ascontiguousarray(self.page(index)))[None], label_of(index)

    # --- caching -------------------------------------------------------------------------------------------
    def _render_all(self) -> np.ndarray:
        pages = np.empty((self.length, self.image_size, self.image_size), dtype=np.uint8)
        bar = tqdm(
            range(self.length),
            desc=f"Rendering synthetic {self.split} pages ({self.image_size}px)",
            unit="page",
            leave=False,
            disable=self.length < 200,
        )
        for i in bar:
            pages[i] = render_sample(self.seed, self.split, i, self.image_size, self.artefact_strength)[0]
        return pages

    def _file_name(self) -> str:
        k = self.key()
        return (
            f"synthetic-v{k['generator_version']}-{k['split']}-seed{k['seed']}-{k['image_size']}px-"
            f"n{k['length']}-a{k['artefact_strength']:g}.npy"
        )

    def _load_or_render(self) -> np.ndarray:
        if self.cache_dir is None:
            return self._render_all()
        path = self.cache_dir / self._file_name()
        manifest = read_manifest(self.cache_dir)
        if manifest.get(path.name) == self.key() and path.exists():
            pages = np.load(path, mmap_mode=None)
            if pages.shape == (self.length, self.image_size, self.image_size) and pages.dtype == np.uint8:
                logger.info("Loaded cached synthetic %s split from %s", self.split, path)
                return pages
            logger.warning("Ignoring cached %s: shape %s does not match its manifest entry", path, pages.shape)
        pages = self._render_all()
        write_cache(self.cache_dir, path.name, pages, self.key())
        logger.info("Cached synthetic %s split (%d pages) to %s", self.split, self.length, path)
        return pages


def read_manifest(cache_dir: Path) -> dict[str, dict[str, Any]]:
    """The manifest of a cache folder (file name -> parameters); empty when there is none yet."""
    path = cache_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"corrupt cache manifest {path}: {exc}; delete the file (the cache is rebuilt)") from exc
    return data.get("files", {})


def write_cache(cache_dir: Path, name: str, pages: np.ndarray, key: dict[str, Any]) -> None:
    """Write ``pages`` as ``cache_dir/name`` and record ``key`` for it in the manifest (both atomically)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(cache_dir / name, lambda fh: np.save(fh, pages))
    files = read_manifest(cache_dir)
    files[name] = key
    text = json.dumps({"format": 1, "files": files}, indent=2, sort_keys=True).encode()
    atomic_write(cache_dir / MANIFEST, lambda fh: fh.write(text))
