"""``DataModuleConfig``: every knob of the document data, validated where it enters (the TOML file).

The app embeds this model as the ``[datamodule_config]`` TOML section, so fields are flat scalars with defaults
and descriptions; unknown keys are rejected (``extra="forbid"``) so that a typo is an error, not a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Source = Literal["synthetic", "rvl_cdip", "hf_rvl_cdip"]
TrainTransform = Literal["train", "train_heavy", "val"]

_REAL_DATA_HELP = (
    "set `root` in [datamodule_config] to the dataset folder (for source='rvl_cdip': the folder holding `images/` "
    "and `labels/`; for source='hf_rvl_cdip': a folder written by `datasets.DatasetDict.save_to_disk`), "
    "or use source='synthetic' to train on generated documents"
)


class DataModuleConfig(BaseModel):
    """Where document images come from and how they are batched and augmented."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    source: Source = Field(
        "synthetic",
        description="'synthetic' renders RVL-CDIP-style pages offline; 'rvl_cdip' reads the original release "
        "(images/ + labels/{train,val,test}.txt); 'hf_rvl_cdip' reads a Hugging Face copy saved with save_to_disk.",
    )
    root: Path | None = Field(None, description="Dataset folder for real data (required unless source='synthetic').")
    image_size: int = Field(224, ge=8, le=4096, description="Side of the square images fed to the model, in pixels.")
    channels: Literal[1, 3] = Field(
        1, description="1 = grayscale; 3 = the gray page repeated to RGB, for ImageNet-pretrained backbones."
    )
    batch_size: int = Field(32, ge=1, description="Training batch size (the batch-size tuner overwrites it).")
    effective_batch_size: int | None = Field(
        None,
        ge=1,
        description="Global batch per optimizer step; when the batch that fits is smaller, gradient accumulation "
        "makes up the rest (accumulate_grad_batches = ceil(effective / (batch_size x processes))).",
    )
    eval_batch_size: int | None = Field(
        None, ge=1, description="Batch size for validation/test; None = same as batch_size."
    )
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0 = load in the main process).")
    persistent_workers: bool = Field(
        True, description="Keep workers alive between epochs (only applies when num_workers > 0)."
    )
    pin_memory: bool = Field(False, description="Page-lock batches for faster host-to-GPU copies.")
    train_transform: TrainTransform = Field(
        "train",
        description="Augmentation preset for the training split: 'train' (mild affine jitter), 'train_heavy' "
        "(stronger rotation/shift/scale/shear, brightness and contrast jitter) or 'val' (none).",
    )
    mean: float | None = Field(
        None, ge=0.0, le=1.0, description="Normalisation mean of [0,1] pixels; None = measured on training images."
    )
    std: float | None = Field(
        None, gt=0.0, le=1.0, description="Normalisation std of [0,1] pixels; None = measured on training images."
    )
    limit_train_samples: int | None = Field(
        None, ge=1, description="Use at most this many training samples (a seeded subset); None = all."
    )
    limit_val_samples: int | None = Field(None, ge=1, description="At most this many validation samples.")
    limit_test_samples: int | None = Field(None, ge=1, description="At most this many test samples.")
    synthetic_train_size: int = Field(4000, ge=1, description="Synthetic documents in the training split.")
    synthetic_val_size: int = Field(800, ge=1, description="Synthetic documents in the validation split.")
    synthetic_test_size: int = Field(800, ge=1, description="Synthetic documents in the test split.")
    synthetic_artefact_strength: float = Field(
        1.0, ge=0.0, le=3.0, description="Scale of simulated scan artefacts (0 = clean renders, 1 = typical scans)."
    )
    seed: int = Field(0, ge=0, description="Seed of synthetic rendering and of sample-limit subsets.")
    cache_in_memory: bool = Field(
        True, description="Render/decode each split once and keep it in memory (synthetic data only)."
    )
    cache_dir: Path | None = Field(
        None, description="Optional folder for rendered synthetic splits (.npy + manifest.json), reused across runs."
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> DataModuleConfig:
        if self.source != "synthetic" and self.root is None:
            raise ValueError(f"source={self.source!r} needs a dataset folder: {_REAL_DATA_HELP}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("set both `mean` and `std`, or neither (then they are measured on training images)")
        return self
