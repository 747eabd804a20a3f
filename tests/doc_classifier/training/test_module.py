"""DocClassifier: the tuner finds its LR, OneCycle is built from hparams per step, metrics are right."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.parsing import lightning_getattr, lightning_hasattr, lightning_setattr
from torch.utils.data import DataLoader, TensorDataset

from traenslenzor.doc_classifier.config import ModuleConfig
from traenslenzor.doc_classifier.training.module import DocClassifier, build_optimizer, parameter_groups


def _config(scheduler: str = "onecycle", **optimizer: Any) -> ModuleConfig:
    return ModuleConfig(
        backbone="tiny_cnn",
        num_classes=4,
        dropout=0.0,
        optimizer={"learning_rate": 1e-3, **optimizer},
        scheduler={"name": scheduler, "div_factor": 10.0, "pct_start": 0.5},
    )


def _loader(n: int = 24, batch_size: int = 8) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(n, 1, 16, 16, generator=generator)
    labels = torch.arange(n) % 4
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)


def _trainer(**kwargs: Any) -> L.Trainer:
    defaults = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return L.Trainer(**{**defaults, **kwargs})


def test_tuner_attribute_lookup_finds_and_updates_learning_rate() -> None:
    module = DocClassifier(_config(), image_size=16, max_lr=3e-3)
    assert lightning_hasattr(module, "learning_rate")
    assert lightning_getattr(module, "learning_rate") == 1e-3
    lightning_setattr(module, "learning_rate", 5e-4)
    assert module.hparams.learning_rate == 5e-4


def test_onecycle_uses_hparams_at_fit_time_and_steps_per_batch() -> None:
    module = DocClassifier(_config(), image_size=16, max_lr=3e-3)
    module.hparams.learning_rate, module.hparams.max_lr = 2e-3, 6e-3  # what tuning does
    trainer = _trainer(max_epochs=2)
    trainer.fit(module, train_dataloaders=_loader())
    scheduler = trainer.lr_scheduler_configs[0]
    assert scheduler.interval == "step"
    onecycle = scheduler.scheduler
    assert onecycle.total_steps == 6  # 2 epochs x 3 batches = estimated_stepping_batches
    group = trainer.optimizers[0].param_groups[0]
    assert group["max_lr"] == pytest.approx(6e-3)
    assert group["initial_lr"] == pytest.approx(6e-3 / 10.0)  # max_lr / div_factor
    assert onecycle.last_epoch == 6  # stepped once per optimizer step


def test_onecycle_needs_max_lr_and_finite_steps() -> None:
    with pytest.raises(ValueError, match="needs max_lr"):
        DocClassifier(_config(), image_size=16)
    module = DocClassifier(_config(), image_size=16, max_lr=1e-3)
    trainer = _trainer(max_epochs=-1, max_steps=-1)
    with pytest.raises(ValueError, match="finite number of steps"):
        trainer.fit(module, train_dataloaders=_loader())


def test_no_scheduler_gives_a_plain_optimizer_at_the_configured_lr() -> None:
    module = DocClassifier(_config(scheduler="none"), image_size=16)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 1e-3]


def test_weight_decay_skips_biases_and_norm_parameters() -> None:
    module = DocClassifier(_config(weight_decay=0.1), image_size=16, max_lr=1e-3)
    decay, no_decay = parameter_groups(module.model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    total = sum(p.numel() for p in module.model.parameters())
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == total


def test_sgd_gets_momentum_and_nesterov() -> None:
    config = _config(name="sgd", momentum=0.8, nesterov=True)
    module = DocClassifier(config, image_size=16, max_lr=1e-3)
    optimizer = build_optimizer(module.model, config.optimizer, 0.05)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.8 and optimizer.param_groups[0]["nesterov"]
    assert optimizer.param_groups[0]["lr"] == 0.05


def test_validation_metrics_match_a_hand_count() -> None:
    module = DocClassifier(_config(), image_size=16, max_lr=1e-3).eval()
    loader = _loader(n=40, batch_size=16)
    metrics = _trainer().validate(module, dataloaders=loader, verbose=False)[0]
    with torch.no_grad():
        logits = torch.cat([module(x) for x, _ in loader])
    labels = torch.cat([y for _, y in loader])
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    assert metrics["val/acc"] == pytest.approx(accuracy)
    assert metrics["val/loss"] == pytest.approx(loss, rel=1e-5)
    assert 0.0 <= metrics["val/f1"] <= 1.0


def test_hparams_round_trip_through_a_checkpoint(tmp_path: Any) -> None:
    module = DocClassifier(_config(), image_size=16, max_lr=3e-3)
    module.hparams.learning_rate = 4e-4
    trainer = _trainer(max_steps=1, default_root_dir=str(tmp_path))
    trainer.fit(module, train_dataloaders=_loader())
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    restored = DocClassifier.load_from_checkpoint(path)
    assert restored.hparams.learning_rate == 4e-4 and restored.hparams.max_lr == 3e-3
    assert restored.config == module.config
