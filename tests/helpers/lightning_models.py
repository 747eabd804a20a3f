"""Tiny LightningModules/DataModules shared by the Lightning adapter tests (their own checks: test_lightning_fakes.py).

``TinyModel`` records what the trainer made it do (batch sizes per step, validation batches, epochs), can fake an
out-of-memory error above a batch size (with any backend's message) and a NaN loss above an LR.
"""

from __future__ import annotations

import os
import warnings

import lightning.pytorch as pl
import torch
from lightning.pytorch.tuner import Tuner as LightningTuner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from traenslenzor.tuner.lightning import Tuner as OurTuner

TUNERS = {"ours": OurTuner, "lightning": LightningTuner}
CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 MiB"
MPS_OOM = "MPS backend out of memory (MPS allocated: 1.00 GB, other allocations: 0 bytes)"


def dataset(n: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


class TinyModel(pl.LightningModule):
    """A 4-8-2 MLP classifier; LR and batch size in ``hparams`` (``learning_rate``, ``batch_size``).

    Args:
        oom_above: steps on a batch larger than this raise ``RuntimeError(oom_message)``.
        nan_above_lr: steps at an LR above this return a NaN loss.
        n: dataset size; with_val: define validation_step/val_dataloader.
    """

    def __init__(
        self,
        learning_rate=1e-3,
        batch_size=4,
        n=32,
        oom_above=None,
        oom_message=CUDA_OOM,
        nan_above_lr=None,
        with_val=True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        self.batch_sizes: list[int] = []  # every training/eval step's batch size, in order
        self.val_batches = 0
        self.epochs: list[int] = []
        self.data = dataset(n)

    def lr_value(self) -> float:
        for holder in (self, self.hparams):
            for name in ("lr", "learning_rate"):
                if name in holder if holder is self.hparams else hasattr(holder, name):
                    return holder[name] if holder is self.hparams else getattr(holder, name)
        return 1e-3

    def _step(self, batch):
        x, y = batch
        self.batch_sizes.append(len(x))
        if self.hparams.oom_above is not None and len(x) > self.hparams.oom_above:
            raise RuntimeError(self.hparams.oom_message)
        return nn.functional.cross_entropy(self.net(x), y)

    def training_step(self, batch, batch_idx):
        loss = self._step(batch)
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        if self.hparams.nan_above_lr is not None and lr > self.hparams.nan_above_lr:
            loss = loss * float("nan")
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.val_batches += 1
        self.log("val_loss", self._step(batch))

    def test_step(self, batch, batch_idx):
        self._step(batch)

    def predict_step(self, batch, batch_idx):
        return self._step(batch)

    def on_train_epoch_start(self):
        self.epochs.append(self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr_value())

    def _loader(self):
        size = getattr(self, "batch_size", None) or self.hparams.batch_size
        return DataLoader(self.data, batch_size=size)

    def train_dataloader(self):
        return self._loader()

    def val_dataloader(self):
        return self._loader()

    def test_dataloader(self):
        return self._loader()

    def predict_dataloader(self):
        return self._loader()


class NoValModel(TinyModel):
    validation_step = None  # type: ignore[assignment]
    val_dataloader = None  # type: ignore[assignment]


class OneCycleModel(NoValModel):
    """Its OneCycleLR is built from ``self.lr`` (starting at 1e-4), the usual pairing with an LR finder."""

    def __init__(self, n: int = 64, total_steps: int = 16):
        super().__init__(n=n)
        self.lr = 1e-4
        self.total_steps = total_steps

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        onecycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.lr, total_steps=self.total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": onecycle, "interval": "step"}}


class TinyData(pl.LightningDataModule):
    """Holds ``batch_size`` (and optionally ``lr``) in its hparams."""

    def __init__(self, batch_size=4, n=32):
        super().__init__()
        self.save_hyperparameters()
        self.data = dataset(n)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.hparams.batch_size)

    def val_dataloader(self):
        return DataLoader(self.data, batch_size=self.hparams.batch_size)


def trainer(root, **kwargs) -> pl.Trainer:
    """A quiet CPU trainer writing (if at all) under ``root``."""
    settings = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1,
        default_root_dir=str(root),
    )
    settings.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pl.Trainer(**settings)


def files_under(root) -> list[str]:
    """Every file under ``root`` (empty if it does not exist)."""
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def trial_sizes(seen: list[int], steps_per_trial: int) -> list[int]:
    """The batch size of each trial, from the per-step sizes (a failed trial records one step)."""
    sizes, i = [], 0
    while i < len(seen):
        size = seen[i]
        run = 1
        while run < steps_per_trial and i + run < len(seen) and seen[i + run] == size:
            run += 1
        sizes.append(size)
        i += run
    return sizes
