"""RVL-CDIP as a Hugging Face ``datasets`` copy saved on disk (``DatasetDict.save_to_disk``).

Needs the optional extra ``pip install 'traenslenzor[hf]'``. Images are read undecoded and decoded here, so an
unreadable one is skipped and counted like in the original layout, never a crash mid-epoch.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .classes import NUM_CLASSES
from .page_io import DatasetLayoutError, SkippingPages, decode_page
from .rvl_cdip import subset_indices

# Our split name -> the names Hugging Face copies use for it, in order of preference.
SPLIT_NAMES = {"train": ("train",), "val": ("validation", "val", "valid"), "test": ("test",)}

HOW_TO_GET = (
    "on a machine with network access run\n"
    "  python -c \"import datasets; datasets.load_dataset('aharley/rvl_cdip').save_to_disk('<root>')\"\n"
    'and copy <root> here, or use source = "rvl_cdip" with the original release, or source = "synthetic"'
)


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(
            "source='hf_rvl_cdip' needs the Hugging Face `datasets` package: pip install 'traenslenzor[hf]'"
        ) from exc
    return datasets


def load_split(root: Path, split: str) -> Any:
    """The ``datasets.Dataset`` of ``split`` saved under ``root``, with an actionable error when absent."""
    root = Path(root)
    layout = (
        f"Expected a folder written by DatasetDict.save_to_disk: {root}/dataset_dict.json and one folder "
        f"per split ({', '.join(n[0] for n in SPLIT_NAMES.values())}) with 'image' and 'label' columns"
    )
    if not (root / "dataset_dict.json").is_file():
        raise DatasetLayoutError(
            f"Hugging Face RVL-CDIP copy not found in {root.resolve()} "
            f"(no dataset_dict.json).\n{layout}.\nTo get it: {HOW_TO_GET}."
        )
    datasets = _import_datasets()
    dataset_dict = datasets.load_from_disk(str(root))
    name = next((n for n in SPLIT_NAMES[split] if n in dataset_dict), None)
    if name is None:
        raise DatasetLayoutError(
            f"{root.resolve()} has splits {sorted(dataset_dict)}, none of "
            f"{list(SPLIT_NAMES[split])} for the {split!r} split.\n{layout}."
        )
    ds = dataset_dict[name]
    missing = {"image", "label"} - set(ds.column_names)
    if missing:
        raise DatasetLayoutError(
            f"split {name!r} in {root.resolve()} lacks column(s) {sorted(missing)}; "
            f"it has {ds.column_names}.\n{layout}."
        )
    return ds.cast_column("image", datasets.Image(decode=False))


class HFRvlCdipPages(SkippingPages):
    """One split of a saved Hugging Face RVL-CDIP copy as ``(uint8 tensor (1, S, S), label)``."""

    def __init__(self, root: Path, split: str, image_size: int, limit: int | None = None, seed: int = 0) -> None:
        super().__init__(root, split, image_size, splits=SPLIT_NAMES)
        self.dataset = load_split(self.root, split)
        self.indices = subset_indices(len(self.dataset), limit, seed)
        self.targets = [int(t) for t in self.dataset.select_columns(["label"])[self.indices.tolist()]["label"]]
        bad = [t for t in self.targets if not 0 <= t < NUM_CLASSES]
        if bad:
            raise ValueError(f"labels outside 0..{NUM_CLASSES - 1} in {self.root} ({split}): {sorted(set(bad))[:5]}")

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self, index: int) -> str:
        return f"row {int(self.indices[index])} of {self.root}"

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.dataset[int(self.indices[index])]["image"]
        if image.get("bytes") is not None:
            source: Any = io.BytesIO(image["bytes"])
        elif image.get("path"):
            source = image["path"]
        else:
            raise OSError("row holds neither image bytes nor a path")
        with Image.open(source) as pil:
            return decode_page(pil, self.image_size), self.targets[index]
