"""DocDataModule and DataModuleConfig: the contract the app and the batch-size tuner rely on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch.utils.data import DataLoader

from traenslenzor.doc_classifier.data import (
    RVL_CDIP_CLASSES,
    DataModuleConfig,
    DatasetLayoutError,
    DocDataModule,
    SyntheticDocuments,
)

SMALL = {
    "image_size": 32,
    "synthetic_train_size": 48,
    "synthetic_val_size": 32,
    "synthetic_test_size": 32,
    "batch_size": 8,
}


def small(**overrides) -> DocDataModule:
    return DocDataModule(DataModuleConfig(**{**SMALL, **overrides}))


# --- config ----------------------------------------------------------------------------------------------------
def test_config_rejects_unknown_keys_naming_them() -> None:
    with pytest.raises(ValidationError, match="batchsize"):
        DataModuleConfig(batchsize=32)


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0),
        ("image_size", 4),
        ("num_workers", -1),
        ("limit_train_samples", 0),
        ("synthetic_val_size", 0),
        ("channels", 2),
        ("source", "imagenet"),
        ("train_transform", "flip"),
    ],
)
def test_config_rejects_out_of_range_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        DataModuleConfig(**{field: value})


def test_real_sources_need_a_root_and_say_how_to_get_one() -> None:
    for source in ("rvl_cdip", "hf_rvl_cdip"):
        with pytest.raises(ValidationError, match=r"needs a dataset folder.*set `root`"):
            DataModuleConfig(source=source)


def test_mean_and_std_come_together() -> None:
    with pytest.raises(ValidationError, match="both `mean` and `std`"):
        DataModuleConfig(mean=0.5)


def test_config_round_trips_through_a_flat_dict() -> None:
    cfg = DataModuleConfig(source="rvl_cdip", root=Path("/data/rvl"), image_size=96, cache_dir=Path("c"))
    dumped = cfg.model_dump(mode="json")
    assert all(not isinstance(v, dict | list) for v in dumped.values()), "TOML section must stay flat"
    assert DataModuleConfig(**dumped) == cfg


# --- module ----------------------------------------------------------------------------------------------------
def test_module_exposes_the_app_contract() -> None:
    dm = small(channels=3)
    assert dm.num_classes == 16 and dm.classes == RVL_CDIP_CLASSES
    assert dm.in_channels == 3
    assert dm.hparams.batch_size == 8
    assert DocDataModule(batch_size=5, image_size=16).hparams.batch_size == 5
    assert DocDataModule(DataModuleConfig(**SMALL), batch_size=3).config.batch_size == 3


def test_batches_have_the_configured_shape_and_dtype() -> None:
    dm = small(channels=3)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.min() >= 0 and y.max() < 16
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2]), "RGB = gray repeated"


def test_batch_size_written_to_hparams_takes_effect_at_the_next_loader() -> None:
    dm = small()
    assert next(iter(dm.train_dataloader()))[0].shape[0] == 8
    dm.hparams.batch_size = 20  # what the batch-size tuner does
    assert next(iter(dm.train_dataloader()))[0].shape[0] == 20
    assert next(iter(dm.val_dataloader()))[0].shape[0] == 20
    assert small(eval_batch_size=4).val_dataloader().batch_size == 4


def test_splits_are_disjoint() -> None:
    dm = small()
    dm.setup("fit")
    dm.setup("test")
    digests = {}
    for split in ("train", "val", "test"):
        pages = dm._pages[split]
        digests[split] = {hashlib.sha1(pages[i][0].numpy().tobytes()).hexdigest() for i in range(len(pages))}
        assert len(digests[split]) == len(pages), f"duplicate pages inside {split}"
    assert not digests["train"] & digests["val"]
    assert not digests["train"] & digests["test"]
    assert not digests["val"] & digests["test"]


def test_sample_limits_cap_each_split() -> None:
    dm = small(limit_train_samples=20, limit_val_samples=5, limit_test_samples=100)
    assert len(dm.dataset("train")) == 20 and len(dm.dataset("val")) == 5 and len(dm.dataset("test")) == 32


def test_setup_is_idempotent_so_repeated_tuner_fits_reuse_the_render() -> None:
    dm = small()
    dm.setup("fit")
    train = dm._pages["train"]
    dm.setup("fit")
    assert dm._pages["train"] is train


def test_val_transform_normalises_with_the_given_statistics_exactly() -> None:
    dm = small(mean=0.5, std=0.25)
    page, _ = dm._pages.get("val") or SyntheticDocuments("val", 32, 32)[3]
    x, _ = dm.dataset("val")[3]
    expected = (page.float() / 255.0 - 0.5) / 0.25
    torch.testing.assert_close(x, expected)


def test_measured_statistics_standardise_the_training_pages() -> None:
    dm = small(train_transform="val", synthetic_train_size=256)
    dm.setup("fit")
    assert 0.4 < dm.mean < 1.0 and 0.05 < dm.std < 0.5
    x = torch.stack([dm.dataset("train")[i][0] for i in range(256)])
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1.0) < 1e-2


@pytest.mark.parametrize("preset", ["train", "train_heavy"])
def test_train_presets_augment_but_keep_shape(preset: str) -> None:
    dm = small(train_transform=preset, mean=0.5, std=0.25)
    a = dm.dataset("train")[0][0]
    b = dm.dataset("train")[0][0]
    assert a.shape == b.shape == (1, 32, 32)
    assert not torch.equal(a, b), "augmentation should be random"


def test_pages_are_identical_in_worker_processes_and_in_the_main_process() -> None:
    live = SyntheticDocuments("train", 12, 24, seed=3, cache_in_memory=False)
    in_workers = torch.cat([x for x, _ in DataLoader(live, batch_size=3, num_workers=2)])
    assert torch.equal(in_workers, torch.stack([live[i][0] for i in range(12)]))


def test_missing_real_dataset_fails_at_construction_with_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError) as err:
        DocDataModule(source="rvl_cdip", root=tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "labels/train.txt" in message and "rvl-cdip" in message


def test_prepare_data_fills_the_disk_cache_that_setup_then_reads(tmp_path: Path) -> None:
    dm = small(cache_dir=tmp_path, limit_val_samples=10)
    dm.prepare_data()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        [
            "manifest.json",
            "synthetic-v1-train-seed0-32px-n48-a1.npy",
            "synthetic-v1-val-seed0-32px-n10-a1.npy",
            "synthetic-v1-test-seed0-32px-n32-a1.npy",
        ]
    )
    dm.setup("fit")
    assert len(dm.dataset("val")) == 10


def test_test_stage_alone_measures_statistics_without_rendering_the_whole_training_split() -> None:
    dm = small(synthetic_train_size=5000)
    dm.setup("test")
    assert "train" not in dm._pages and dm.mean is not None
