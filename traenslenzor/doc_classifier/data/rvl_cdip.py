"""RVL-CDIP in its original release layout: an ``images/`` tree of TIFF pages and ``labels/{split}.txt``.

Each label file line is ``<path relative to images/> <label 0-15>``, e.g.
``imagesa/a/a/a/aaa06d00/50486482-6482.tif 6``. The layout is checked (cheaply, no image is opened) before
anything else runs, and a missing piece is reported with the path looked at, the expected layout and where the
dataset comes from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .classes import NUM_CLASSES
from .page_io import DatasetLayoutError, SkippingPages, open_page

SPLIT_FILES = {"train": "train.txt", "val": "val.txt", "test": "test.txt"}

EXPECTED_LAYOUT = """\
  <root>/
    images/            the page images (TIFF), in any sub-folders
    labels/train.txt   one line per page: "<path relative to images/> <label 0-15>"
    labels/val.txt
    labels/test.txt"""

HOW_TO_GET = (
    "RVL-CDIP (Harley et al. 2015) is published at https://adamharley.com/rvl-cdip/ "
    "(rvl-cdip.tar.gz, about 38 GB); unpack it and point `root` at the folder that holds `images/` and `labels/`, "
    'or set source = "synthetic" in [datamodule_config] to train on generated documents'
)


def _layout_error(root: Path, problem: str) -> DatasetLayoutError:
    return DatasetLayoutError(
        f"RVL-CDIP not found: {problem} (looked in {root.resolve()}).\nExpected layout:\n{EXPECTED_LAYOUT}\n"
        f"{HOW_TO_GET}."
    )


def check_layout(root: Path) -> None:
    """Raise ``DatasetLayoutError`` unless ``root`` has ``images/`` and all three label files."""
    root = Path(root)
    if not root.is_dir():
        raise _layout_error(root, f"folder {root} does not exist")
    if not (root / "images").is_dir():
        raise _layout_error(root, f"no images/ folder in {root}")
    missing = [name for name in SPLIT_FILES.values() if not (root / "labels" / name).is_file()]
    if missing:
        raise _layout_error(root, f"missing label file(s) {', '.join('labels/' + m for m in missing)}")


def read_label_file(path: Path) -> list[tuple[str, int]]:
    """Parse ``<relative path> <label>`` lines; blank lines are ignored, anything else malformed is an error."""
    entries: list[tuple[str, int]] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected '<relative path> <label>', got {line!r}")
        label = int(parts[1])
        if not 0 <= label < NUM_CLASSES:
            raise ValueError(f"{path}:{number}: label {label} is outside 0..{NUM_CLASSES - 1} in {line!r}")
        entries.append((parts[0].strip(), label))
    if not entries:
        raise ValueError(f"{path} lists no images; expected '<relative path> <label>' lines")
    return entries


def subset_indices(n: int, limit: int | None, seed: int) -> np.ndarray:
    """All of ``range(n)``, or a seeded random ``limit`` of them in ascending order (for quick runs)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


class RvlCdipPages(SkippingPages):
    """One split of RVL-CDIP (original layout) as ``(uint8 tensor (1, S, S), label)``."""

    def __init__(self, root: Path, split: str, image_size: int, limit: int | None = None, seed: int = 0) -> None:
        super().__init__(root, split, image_size, splits=SPLIT_FILES)
        check_layout(self.root)
        entries = read_label_file(self.root / "labels" / SPLIT_FILES[split])
        keep = subset_indices(len(entries), limit, seed)
        self.paths = [entries[i][0] for i in keep]
        self.targets = [entries[i][1] for i in keep]

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self, index: int) -> str:
        return str(self.root / "images" / self.paths[index])

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        return open_page(self.root / "images" / self.paths[index], self.image_size), self.targets[index]
