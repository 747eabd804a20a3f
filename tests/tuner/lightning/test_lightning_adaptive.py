"""The adaptive range through the Lightning adapter: opt-in on ``Tuner.lr_find``, the same decisions as ``find_lr``."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.helpers.lightning_models import trainer
from traenslenzor.tuner import AdaptiveRange, TunerConfigurationError
from traenslenzor.tuner.lightning import LearningRateFinder, Tuner


class LinReg(pl.LightningModule):
    """y = 2x with E[x^2] = 1 under SGD on MSE: learns for lr < ~1, blows up above lr ~2 (as in test_lr_finder)."""

    def __init__(self, learning_rate: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.net = nn.Linear(1, 1)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(256, 1, generator=g)
        self.data = TensorDataset(x, 2 * x + 0.3 * torch.randn(256, 1, generator=g))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=32)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_tuner_keeps_lightnings_fixed_range_unless_asked(tmp_path) -> None:
    model = LinReg()
    kwargs = {"min_lr": 1e-4, "max_lr": 0.05, "num_training": 40, "update_attr": False, "progress_bar": False}
    result = Tuner(trainer(tmp_path, max_steps=200)).lr_find(model, **kwargs)
    assert result.stop_reason == "completed" and len(result.lrs) == 40
    assert max(result.lrs) == pytest.approx(0.05) and "adaptive_range" not in result.metadata


def test_tuner_extends_past_max_lr_when_asked(tmp_path) -> None:
    # the adaptive range reads the training loss; no probe, so the small loader trains on all its batches
    kwargs = {"min_lr": 1e-4, "max_lr": 0.05, "num_training": 40, "update_attr": False, "progress_bar": False}
    kwargs["probe_batches"] = 0
    fixed = Tuner(trainer(tmp_path, max_steps=200)).lr_find(LinReg(), **kwargs)
    model = LinReg()
    before = _weights(model)
    result = Tuner(trainer(tmp_path, max_steps=200)).lr_find(model, adaptive_range=AdaptiveRange(), **kwargs)
    (event,) = result.metadata["adaptive_range"]
    assert event["action"] == "extend" and "never turned up" in event["reason"]
    assert result.stop_reason == "diverged" and 2.0 < result.lrs[-1] <= event["cap"] <= 0.05 * 100
    assert result.lrs[:40] == pytest.approx(fixed.lrs) and result.raw_losses[:40] == pytest.approx(fixed.raw_losses)
    assert result.metadata["total_steps"] == len(result.lrs) <= 3 * 40
    assert result.metadata["requested_range"] == [1e-4, 0.05]
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model), strict=True))  # restored


def test_tuner_restarts_below_min_lr_when_the_loss_blew_up_at_once(tmp_path, caplog) -> None:
    model = LinReg()
    before = _weights(model)
    kwargs = {"min_lr": 3.0, "max_lr": 1000.0, "num_training": 40, "update_attr": False, "progress_bar": False}
    with caplog.at_level("WARNING", logger="traenslenzor.tuner.lightning.learning_rate_finder"):
        result = Tuner(trainer(tmp_path, max_steps=200)).lr_find(model, adaptive_range=AdaptiveRange(), **kwargs)
    (event,) = result.metadata["adaptive_range"]
    assert event["action"] == "restart" and "restarted" in caplog.text
    assert result.lrs[0] == pytest.approx(3e-3) and result.stop_reason == "diverged"
    assert result.metadata["total_steps"] == event["steps"] + len(result.lrs) <= 3 * 40
    assert 1e-2 < result.suggestion() < 2.0
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model), strict=True))


def test_callback_refuses_a_bad_adaptive_range() -> None:
    with pytest.raises(TunerConfigurationError, match="AdaptiveRange"):
        LearningRateFinder(adaptive_range={"extend_decades": 1})  # type: ignore[arg-type]
