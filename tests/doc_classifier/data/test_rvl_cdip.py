"""Real RVL-CDIP loaders on fixtures built here: original layout (images/ + labels/) and a saved HF copy."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from traenslenzor.doc_classifier.data import DatasetLayoutError, DocDataModule
from traenslenzor.doc_classifier.data.rvl_cdip import RvlCdipPages, read_label_file, subset_indices

SIZE = 16


def make_rvl_cdip(root: Path, per_split: int = 6, corrupt: str | None = None) -> dict[str, list[tuple[str, int]]]:
    """Write a miniature RVL-CDIP: TIFF pages in nested folders and the three label files."""
    entries: dict[str, list[tuple[str, int]]] = {}
    (root / "labels").mkdir(parents=True)
    for s, split in enumerate(("train", "val", "test")):
        rows = []
        for i in range(per_split):
            label = (i * 3 + s) % 16
            rel = f"images{split[0]}/{i % 2}/doc{s}_{i}.tif"
            path = root / "images" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (60 + i, 80), 12 * label + 30).save(path, format="TIFF")
            rows.append((rel, label))
        entries[split] = rows
        (root / "labels" / f"{split}.txt").write_text("".join(f"{p} {y}\n" for p, y in rows) + "\n")
    if corrupt is not None:
        rel = entries[corrupt][2][0]
        (root / "images" / rel).write_bytes(b"II*\x00 this is not a tiff")
    return entries


def _expected_gray(label: int) -> int:
    return 12 * label + 30


def test_loads_every_page_resized_with_its_label(tmp_path: Path) -> None:
    entries = make_rvl_cdip(tmp_path)
    ds = RvlCdipPages(tmp_path, "val", SIZE)
    assert len(ds) == 6
    for i, (_, label) in enumerate(entries["val"]):
        page, got = ds[i]
        assert got == label
        assert page.shape == (1, SIZE, SIZE) and page.dtype == torch.uint8
        assert torch.all(page == _expected_gray(label))
    assert ds.labels.tolist() == [y for _, y in entries["val"]]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_corrupt_image_is_skipped_counted_and_warned_not_a_crash(tmp_path: Path, caplog) -> None:
    entries = make_rvl_cdip(tmp_path, corrupt="train")
    ds = RvlCdipPages(tmp_path, "train", SIZE)
    with caplog.at_level(logging.WARNING):
        batches = list(DataLoader(ds, batch_size=4))
    labels = torch.cat([y for _, y in batches]).tolist()
    expected = [y for _, y in entries["train"]]
    assert labels == [*expected[:2], expected[3], *expected[3:]], "bad page replaced by the next readable one"
    assert ds.skipped == {2}
    assert "Skipping unreadable image" in caplog.text and entries["train"][2][0] in caplog.text
    ds[2]
    assert caplog.text.count("Skipping unreadable image") == 1, "warned once per page"


def test_missing_image_file_is_treated_like_a_corrupt_one(tmp_path: Path) -> None:
    entries = make_rvl_cdip(tmp_path)
    (tmp_path / "images" / entries["test"][0][0]).unlink()
    ds = RvlCdipPages(tmp_path, "test", SIZE)
    assert ds[0][1] == entries["test"][1][1] and ds.skipped == {0}


def test_a_split_of_only_unreadable_images_is_a_clear_error(tmp_path: Path) -> None:
    make_rvl_cdip(tmp_path)
    for path in (tmp_path / "images").rglob("*.tif"):
        path.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match=r"consecutive images .* are unreadable"):
        RvlCdipPages(tmp_path, "val", SIZE)[0]


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda root: None, "does not exist"),
        (lambda root: (root / "labels").mkdir(parents=True), "no images/ folder"),
        (
            lambda root: (
                (root / "images").mkdir(parents=True),
                (root / "labels").mkdir(),
                (root / "labels" / "train.txt").write_text("a.tif 1\n"),
            ),
            "labels/val.txt, labels/test.txt",
        ),
    ],
)
def test_missing_or_incomplete_dataset_says_where_what_and_how(tmp_path: Path, damage, problem: str) -> None:
    root = tmp_path / "rvl"
    damage(root)
    with pytest.raises(DatasetLayoutError) as err:
        RvlCdipPages(root, "train", SIZE)
    message = str(err.value)
    assert problem in message
    assert str(root) in message, "where it looked"
    assert "labels/train.txt" in message and "images/" in message, "expected layout"
    assert "adamharley.com/rvl-cdip" in message and "synthetic" in message, "how to obtain it / alternative"


@pytest.mark.parametrize(
    "line, problem",
    [
        ("only_a_path.tif", "expected '<relative path> <label>'"),
        ("a.tif seven", "expected '<relative path> <label>'"),
        ("a.tif 16", "label 16 is outside 0..15"),
    ],
)
def test_malformed_label_lines_name_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "train.txt"
    path.write_text(f"ok.tif 3\n\n{line}\n")
    with pytest.raises(ValueError, match=problem) as err:
        read_label_file(path)
    assert f"{path}:3" in str(err.value)


def test_paths_with_spaces_keep_the_label_as_the_last_field(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("dir with space/a b.tif 12\n")
    assert read_label_file(path) == [("dir with space/a b.tif", 12)]


def test_limit_takes_a_seeded_subset_in_file_order() -> None:
    picked = subset_indices(100, 10, seed=1)
    assert len(picked) == 10 and np.all(np.diff(picked) > 0)
    assert np.array_equal(picked, subset_indices(100, 10, seed=1))
    assert not np.array_equal(picked, subset_indices(100, 10, seed=2))
    assert np.array_equal(subset_indices(5, 10, seed=0), np.arange(5))


def test_datamodule_serves_the_real_layout(tmp_path: Path) -> None:
    entries = make_rvl_cdip(tmp_path, per_split=8)
    dm = DocDataModule(
        source="rvl_cdip",
        root=tmp_path,
        image_size=SIZE,
        batch_size=3,
        mean=0.5,
        std=0.5,
        train_transform="val",
        limit_val_samples=5,
    )
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (3, 1, SIZE, SIZE)
    assert len(dm.dataset("val")) == 5
    assert set(y.tolist()) <= {lbl for _, lbl in entries["val"]}
    dm.hparams.batch_size = 8
    assert next(iter(dm.train_dataloader()))[0].shape[0] == 8


# --- Hugging Face copy -----------------------------------------------------------------------------------------
def _make_hf(root: Path, corrupt_row: int | None = None) -> list[int]:
    datasets = pytest.importorskip("datasets")
    labels = [3, 0, 15, 7, 9]

    def png(label: int) -> bytes:
        buf = io.BytesIO()
        Image.new("L", (40, 50), _expected_gray(label)).save(buf, format="PNG")
        return buf.getvalue()

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=16)})
    rows = {"image": [{"bytes": png(y), "path": None} for y in labels], "label": labels}
    if corrupt_row is not None:
        rows["image"][corrupt_row] = {"bytes": b"\x89PNG broken", "path": None}
    split = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(root))
    return labels


def test_hf_copy_loads_with_labels_and_skips_a_corrupt_row(tmp_path: Path, caplog) -> None:
    from traenslenzor.doc_classifier.data.hf_dataset import HFRvlCdipPages

    labels = _make_hf(tmp_path / "hf", corrupt_row=1)
    ds = HFRvlCdipPages(tmp_path / "hf", "val", SIZE)
    assert len(ds) == 5 and ds.labels.tolist() == labels
    page, label = ds[0]
    assert page.shape == (1, SIZE, SIZE) and label == 3 and torch.all(page == _expected_gray(3))
    with caplog.at_level(logging.WARNING):
        page, label = ds[1]
    assert label == 15 and ds.skipped == {1} and "row 1" in caplog.text


def test_hf_datamodule_and_limits(tmp_path: Path) -> None:
    _make_hf(tmp_path / "hf")
    dm = DocDataModule(source="hf_rvl_cdip", root=tmp_path / "hf", image_size=SIZE, batch_size=2, limit_train_samples=4)
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 1, SIZE, SIZE) and len(dm.dataset("train")) == 4


def test_hf_missing_copy_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError) as err:
        DocDataModule(source="hf_rvl_cdip", root=tmp_path / "none")
    message = str(err.value)
    assert str(tmp_path / "none") in message and "dataset_dict.json" in message and "save_to_disk" in message
