"""The fixed-batch probe through Lightning: measured forward-only via training_step, read by the default rule."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers.lightning_models import NoValModel, trainer
from traenslenzor.tuner import TunerConfigurationError
from traenslenzor.tuner.lightning import LearningRateFinder, Tuner
from traenslenzor.tuner.lr.wall import PROBE_BATCHES, probe_due


class _Counts(NoValModel):
    def __init__(self) -> None:
        super().__init__(n=64)
        self.grad_modes: list[bool] = []

    def training_step(self, batch, batch_idx):
        self.grad_modes.append(torch.is_grad_enabled())
        return super().training_step(batch, batch_idx)


def test_lr_find_measures_the_set_aside_batches_after_every_second_step(tmp_path) -> None:
    model = _Counts()
    result = Tuner(trainer(tmp_path)).lr_find(model, num_training=30, max_lr=10.0, progress_bar=False)
    points = len(result.lrs)
    due = [probe_due(i) for i in range(points)]
    assert len(result.probe_losses) == points and sum(due) == points // 2
    assert all(math.isfinite(v) == d for v, d in zip(result.probe_losses[:-1], due, strict=False))
    # per point: one training step (grad); after every 2nd, one forward of the set-aside batches joined (no grad)
    assert model.grad_modes == [mode for d in due for mode in ([True, False] if d else [True])]
    assert result.metadata["probe_forward_passes"] == PROBE_BATCHES * sum(due)
    assert result.suggestion_outcome().method in ("blend", "stable")  # stable only where the probe reads nothing


def test_probe_batches_is_validated() -> None:
    with pytest.raises(TunerConfigurationError, match="probe_batches"):
        LearningRateFinder(probe_batches=-1)


def test_a_joined_probe_that_runs_out_of_memory_is_measured_batch_by_batch(tmp_path) -> None:
    # The batch size the batch-size finder found (8) fits; the probe's batches joined (4 x 8) do not.
    model = NoValModel(batch_size=8, n=64, oom_above=8)
    result = Tuner(trainer(tmp_path)).lr_find(model, num_training=10, max_lr=0.1, progress_bar=False)
    assert len(result.lrs) == 10
    assert sum(math.isfinite(v) for v in result.probe_losses) == 5  # every due probe was measured
    probe_sizes = [s for s in model.batch_sizes if s != 8]
    assert probe_sizes == [PROBE_BATCHES * 8]  # one joined pass tried (out of memory), then one pass per batch
