"""The standalone ``pytorch_lightning`` package: its trainer runs our Tuner and callbacks as the unified one does.

The client is written as the projects that import ``pytorch_lightning`` write it: the LR in the module's nested
hyper-parameters, the batch size in the datamodule's, ``scale_batch_size`` (binsearch) first, then ``lr_find``.
Skipped where ``pytorch-lightning`` is not installed (the ``dev`` extra installs it).
"""

from __future__ import annotations

import math
import os
import pickle
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("pytorch_lightning")

from pytorch_lightning.utilities.exceptions import MisconfigurationException  # noqa: E402

from traenslenzor.tuner import Tuner  # noqa: E402
from traenslenzor.tuner.lightning import callbacks_for  # noqa: E402
from traenslenzor.tuner.lightning.namespace import namespace_of  # noqa: E402

FITS_UP_TO = 127  # larger batches raise a CUDA out-of-memory error (faked; one failed trial: each costs a gc pass)


class SeedStyleModule(pl.LightningModule):
    """A 4-16-2 MLP whose optimizer reads ``hparams.learning_rate``, saved beside a nested ``module_config``."""

    def __init__(self, learning_rate: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "module_config": {"backbone": "mlp", "optimizer": {"name": "sgd", "learning_rate": learning_rate}},
                "learning_rate": learning_rate,
            }
        )
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        if len(x) > FITS_UP_TO:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 MiB")
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)


class SeedStyleData(pl.LightningDataModule):
    def __init__(self, batch_size: int = 8, n: int = 512) -> None:
        super().__init__()
        self.save_hyperparameters()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 4, generator=g)
        self.data = TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.hparams.batch_size, shuffle=True)


def _trainer(root, **kwargs):
    settings = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1,
        default_root_dir=str(root),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pl.Trainer(**{**settings, **kwargs})


def _weights(model) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def _files_under(root) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def test_seed_style_tuning_runs_both_searches_on_a_pytorch_lightning_trainer(tmp_path) -> None:
    torch.manual_seed(0)
    model, dm = SeedStyleModule(), SeedStyleData()
    weights = _weights(model)
    marker = pl.Callback()
    trainer = _trainer(tmp_path / "root", callbacks=[marker])
    tuner = Tuner(trainer)

    size = tuner.scale_batch_size(
        model, datamodule=dm, mode="binsearch", steps_per_trial=20, init_val=32, max_trials=15, progress_bar=False
    )
    trials = tuner.batch_size_result.trials
    assert [t.batch_size for t in trials[:3]] == [32, 64, 128]  # doubled until the faked out-of-memory error
    assert 64 <= size <= FITS_UP_TO and any(t.batch_size == size and t.fits for t in trials)  # a size that ran
    assert dm.hparams.batch_size == size

    result = tuner.lr_find(
        model, datamodule=dm, min_lr=1e-6, max_lr=1e-1, num_training=100, attr_name="learning_rate", progress_bar=False
    )
    assert len(result.results["lr"]) == 100  # the whole sweep ran
    # The probe batches joined would be 4 x the found size: out of memory, so they were measured one by one.
    assert sum(math.isfinite(v) for v in result.results["probe_loss"]) == 50  # after every 2nd step
    lr = result.suggestion()
    assert 1e-6 <= lr <= 1e-1
    assert model.hparams.learning_rate == lr
    assert model.hparams.module_config["optimizer"]["learning_rate"] == 1e-3  # only the named holder is written

    # Both calls ended through the trainer's own exit (caught: status FINISHED), and changed nothing else.
    assert trainer.state.status == "finished"
    searches = callbacks_for(trainer)  # the callback classes the Tuner attached, on pytorch_lightning's Callback
    assert trainer.callbacks.count(marker) == 1 and not any(isinstance(cb, searches) for cb in trainer.callbacks)
    assert all(torch.equal(a, b) for a, b in zip(weights, _weights(model), strict=True))
    assert trainer.global_step == 0
    assert "train_loss" not in trainer.callback_metrics
    assert _files_under(tmp_path) == []

    trainer.fit(model, datamodule=dm)  # the tuned values are what training uses
    assert trainer.train_dataloader.batch_size == size
    assert trainer.optimizers[0].param_groups[0]["lr"] == lr


def test_the_package_is_read_from_the_trainer_or_module(tmp_path) -> None:
    import lightning.pytorch as lightning_pytorch

    class UsersTrainer(pl.Trainer):  # a subclass in the user's own module
        pass

    assert namespace_of(_trainer(tmp_path)).package == "pytorch_lightning"
    assert namespace_of(UsersTrainer(logger=False, enable_progress_bar=False)).package == "pytorch_lightning"
    assert namespace_of(SeedStyleModule()).Callback is pl.Callback
    assert namespace_of(lightning_pytorch.LightningModule()).package == "lightning.pytorch"
    assert namespace_of(object()).package == "lightning.pytorch"  # neither: the unified package, the default


def test_the_packages_callbacks_derive_from_its_callback_and_run_there(tmp_path) -> None:
    LearningRateFinderPL, BatchSizeFinderPL = callbacks_for("pytorch_lightning")
    assert callbacks_for(_trainer(tmp_path)) == (LearningRateFinderPL, BatchSizeFinderPL)
    assert issubclass(LearningRateFinderPL, pl.Callback) and issubclass(BatchSizeFinderPL, pl.Callback)
    assert LearningRateFinderPL.__name__ == "LearningRateFinder"
    finder = LearningRateFinderPL(num_training_steps=10, update_attr=False, progress_bar=False)
    model = SeedStyleModule()
    trainer = _trainer(tmp_path, callbacks=finder, limit_train_batches=2)  # one callback, not in a list
    trainer.fit(model, datamodule=SeedStyleData())
    assert len(finder.optimal_lr.results["lr"]) == 10
    assert trainer.global_step == 2  # training went on after the search
    # ddp_spawn pickles the trainer with its callbacks: a class built per package pickles by its recipe.
    copy = pickle.loads(pickle.dumps(finder))
    assert type(copy) is LearningRateFinderPL and copy.optimal_lr.results["lr"] == finder.optimal_lr.results["lr"]


def test_errors_are_the_packages_misconfiguration_exception(tmp_path) -> None:
    with pytest.raises(MisconfigurationException, match="method='fit'"):
        Tuner(_trainer(tmp_path)).lr_find(SeedStyleModule(), datamodule=SeedStyleData(), method="validate")
    with pytest.raises(MisconfigurationException, match="no field 'bs'"):
        Tuner(_trainer(tmp_path)).scale_batch_size(SeedStyleModule(), datamodule=SeedStyleData(), batch_arg_name="bs")
