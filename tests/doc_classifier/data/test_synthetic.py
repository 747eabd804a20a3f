"""Synthetic document generator: determinism, shapes, every class, balance, learnable-but-not-trivial, disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from traenslenzor.doc_classifier.data import LAYOUTS, NUM_CLASSES, RVL_CDIP_CLASSES, SyntheticDocuments
from traenslenzor.doc_classifier.data.synthetic import label_of, page_rng, render_page, render_sample
from traenslenzor.doc_classifier.data.synthetic.dataset import MANIFEST, read_manifest


def test_layout_registry_follows_rvl_cdip_label_order() -> None:
    assert tuple(LAYOUTS) == RVL_CDIP_CLASSES
    assert len(RVL_CDIP_CLASSES) == NUM_CLASSES == 16


@pytest.mark.parametrize("label", range(NUM_CLASSES), ids=RVL_CDIP_CLASSES)
@pytest.mark.parametrize("size", [24, 64, 100])
def test_every_class_renders_a_nonblank_page_of_the_requested_size(label: int, size: int) -> None:
    page = render_page(label, size, page_rng(0, "train", label))
    assert page.shape == (size, size)
    assert page.dtype == np.uint8
    assert page.std() > 3, "page is blank"
    clean = render_page(label, size, page_rng(0, "train", label), artefact_strength=0.0)
    assert (clean < 250).sum() >= size, "less than a line's worth of ink on the clean render"


@pytest.mark.parametrize("label", range(NUM_CLASSES), ids=RVL_CDIP_CLASSES)
def test_clean_render_has_white_paper(label: int) -> None:
    page = render_page(label, 64, page_rng(3, "val", label), artefact_strength=0.0)
    assert (page == 255).any() and page.min() < 200


def test_same_seed_split_index_gives_identical_pages() -> None:
    for index in (0, 7, 123):
        a, la = render_sample(5, "train", index, 48)
        b, lb = render_sample(5, "train", index, 48)
        assert la == lb == index % NUM_CLASSES
        np.testing.assert_array_equal(a, b)


def test_seed_split_and_index_each_change_the_page() -> None:
    base = render_sample(5, "train", 16, 48)[0]
    for other in (
        render_sample(6, "train", 16, 48)[0],
        render_sample(5, "val", 16, 48)[0],
        render_sample(5, "train", 32, 48)[0],
    ):
        assert not np.array_equal(base, other)


def test_labels_cycle_so_every_prefix_of_16k_is_balanced() -> None:
    counts = np.bincount([label_of(i) for i in range(16 * 5)], minlength=NUM_CLASSES)
    assert counts.tolist() == [5] * NUM_CLASSES


def test_bad_arguments_are_rejected_with_the_valid_range() -> None:
    with pytest.raises(ValueError, match=r"label must be in \[0, 15\]"):
        render_page(16, 32, page_rng(0, "train", 0))
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        page_rng(0, "dev", 0)
    with pytest.raises(ValueError, match="at least 8 pixels"):
        render_page(0, 4, page_rng(0, "train", 0))


def test_dataset_items_are_uint8_tensors_with_cycling_labels() -> None:
    ds = SyntheticDocuments("train", 20, 32, seed=1)
    page, label = ds[17]
    assert page.shape == (1, 32, 32) and page.dtype == torch.uint8
    assert label == 1
    np.testing.assert_array_equal(page[0].numpy(), render_sample(1, "train", 17, 32)[0])
    assert ds.labels.tolist() == [i % 16 for i in range(20)]
    with pytest.raises(IndexError):
        ds[20]


def test_rendering_on_the_fly_equals_the_cached_split() -> None:
    cached = SyntheticDocuments("val", 18, 32, seed=2, cache_in_memory=True)
    live = SyntheticDocuments("val", 18, 32, seed=2, cache_in_memory=False)
    for i in range(18):
        assert torch.equal(cached[i][0], live[i][0])


def test_disk_cache_writes_manifest_and_reloads_identical_pages(tmp_path) -> None:
    first = SyntheticDocuments("test", 17, 24, seed=4, cache_dir=tmp_path)
    entries = read_manifest(tmp_path)
    assert len(entries) == 1
    ((name, key),) = entries.items()
    assert (tmp_path / name).exists()
    assert key == first.key() and key["split"] == "test" and key["length"] == 17
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MANIFEST, name])  # no temp files left

    # A second dataset loads the file instead of rendering (a doctored file proves it was read).
    doctored = np.load(tmp_path / name)
    doctored[0] = 7
    np.save(tmp_path / name, doctored)
    second = SyntheticDocuments("test", 17, 24, seed=4, cache_dir=tmp_path)
    assert int(second[0][0].max()) == 7
    np.testing.assert_array_equal(second[5][0][0].numpy(), first[5][0][0].numpy())


def test_disk_cache_ignores_entries_made_with_other_parameters(tmp_path) -> None:
    SyntheticDocuments("test", 17, 24, seed=4, cache_dir=tmp_path)
    other = SyntheticDocuments("test", 17, 24, seed=5, cache_dir=tmp_path)
    assert len(read_manifest(tmp_path)) == 2
    np.testing.assert_array_equal(other[3][0][0].numpy(), render_sample(5, "test", 3, 24)[0])


def test_corrupt_manifest_is_a_clear_error(tmp_path) -> None:
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="corrupt cache manifest"):
        SyntheticDocuments("test", 4, 16, cache_dir=tmp_path)


def _nearest_centroid_accuracy(size: int, per_class: int) -> float:
    """Accuracy of a nearest-class-mean classifier on 8x8 thumbnails (a model a CNN must beat)."""

    def features(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        ds = SyntheticDocuments(split, n, size, seed=0)
        x = torch.stack([ds[i][0] for i in range(n)]).float()
        x = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1).numpy()
        return x, ds.labels

    xt, yt = features("train", 16 * per_class)
    xv, yv = features("val", 16 * per_class)
    centroids = np.stack([xt[yt == c].mean(0) for c in range(NUM_CLASSES)])
    pred = ((xv[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((pred == yv).mean())


def test_classes_are_learnable_but_not_trivially_separable() -> None:
    acc = _nearest_centroid_accuracy(size=32, per_class=12)
    assert acc > 2 / NUM_CLASSES, f"layouts barely differ: nearest-centroid accuracy {acc:.2f}"
    assert acc < 0.9, f"classes separate by mean pixels alone: nearest-centroid accuracy {acc:.2f}"
