"""The fixed-batch probe through Lightning: measured forward-only via training_step, read by the default rule."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers.lightning_models import NoValModel, trainer
from traenslenzor.tuner import TunerConfigurationError
from traenslenzor.tuner.lightning import LearningRateFinder, Tuner
from traenslenzor.tuner.lr.wall import PROBE_BATCHES


class _Counts(NoValModel):
    def __init__(self) -> None:
        super().__init__(n=64)
        self.grad_modes: list[bool] = []

    def training_step(self, batch, batch_idx):
        self.grad_modes.append(torch.is_grad_enabled())
        return super().training_step(batch, batch_idx)


def test_lr_find_measures_the_set_aside_batches_after_every_step(tmp_path) -> None:
    model = _Counts()
    result = Tuner(trainer(tmp_path)).lr_find(model, num_training=30, max_lr=10.0, progress_bar=False)
    points = len(result.lrs)
    assert len(result.probe_losses) == points and all(math.isfinite(v) for v in result.probe_losses[:-1])
    # per point: one training step (grad), then one forward per set-aside batch (no grad)
    assert model.grad_modes == ([True] + [False] * PROBE_BATCHES) * points
    assert result.metadata["probe_forward_passes"] == PROBE_BATCHES * points
    assert result.suggestion_outcome().method in ("wall", "stable")  # stable only where wall reads nothing


def test_probe_batches_is_validated() -> None:
    with pytest.raises(TunerConfigurationError, match="probe_batches"):
        LearningRateFinder(probe_batches=-1)
