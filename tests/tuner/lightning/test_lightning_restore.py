"""Ours only: what a search changes is restored exactly -- in the Tuner, inside a running fit, on failure and on
KeyboardInterrupt -- and search steps never reach loggers, callbacks or epoch metrics."""

from __future__ import annotations

import signal

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from tests.helpers.lightning_models import (
    NoValModel,
    files_under,
    trainer,
)
from traenslenzor.tuner.lightning import BatchSizeFinder, LearningRateFinder, Tuner


def _weights(model) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def _optimizer_state(optimizer) -> tuple:
    state = optimizer.state_dict()
    tensors = [v.clone() for s in state["state"].values() for v in s.values() if torch.is_tensor(v)]
    groups = [{k: v for k, v in g.items() if k != "params"} for g in state["param_groups"]]
    return tensors, groups


def _assert_equal(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


class _MidTraining(Callback):
    """At epoch 1 (after real training steps): snapshot, run ``search``, and record what changed."""

    def __init__(self, search):
        self.search = search
        self.checked = False

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch != 1:
            return
        optimizer = trainer.optimizers[0]
        before = (_weights(pl_module), _optimizer_state(optimizer), trainer.global_step, torch.get_rng_state())
        self.search(trainer, pl_module)
        after = (_weights(pl_module), _optimizer_state(optimizer), trainer.global_step, torch.get_rng_state())
        _assert_equal(before[0], after[0])
        _assert_equal(before[1][0], after[1][0])
        assert before[1][1] == after[1][1]
        assert before[2] == after[2]
        assert torch.equal(before[3], after[3])
        self.checked = True


def _adam(model):
    model.configure_optimizers = lambda: torch.optim.Adam(model.parameters(), lr=1e-3)  # state to restore
    return model


def test_lr_search_inside_fit_restores_weights_optimizer_step_and_rng(tmp_path) -> None:
    finder = LearningRateFinder(num_training_steps=10, update_attr=False, progress_bar=False)
    check = _MidTraining(finder.lr_find)
    trainer(tmp_path, max_epochs=2, callbacks=[check]).fit(_adam(NoValModel(n=16)))
    assert check.checked
    assert len(finder.optimal_lr.results["lr"]) == 10


def test_batch_search_inside_fit_restores_weights_optimizer_step_and_rng(tmp_path) -> None:
    finder = BatchSizeFinder(max_val=8, progress_bar=False)
    check = _MidTraining(finder.scale_batch_size)
    model = _adam(NoValModel(n=16))
    with pytest.warns(UserWarning, match="applies from the next call"):  # the running fit keeps its loader
        trainer(tmp_path, max_epochs=2, callbacks=[check]).fit(model)
    assert check.checked
    assert finder.optimal_batch_size == model.hparams.batch_size == 8


def test_tuner_leaves_weights_callbacks_and_directory_as_they_were(tmp_path) -> None:
    model = NoValModel(n=64)
    weights = _weights(model)
    marker = Callback()
    t = trainer(tmp_path / "root", callbacks=[marker])
    tuner = Tuner(t)
    tuner.lr_find(model, num_training=10, update_attr=False, progress_bar=False)
    tuner.scale_batch_size(model, max_val=8, progress_bar=False)
    _assert_equal(weights, _weights(model))
    assert t.callbacks.count(marker) == 1
    assert not any(isinstance(cb, LearningRateFinder | BatchSizeFinder) for cb in t.callbacks)
    assert t.global_step == 0
    assert "train_loss" not in t.callback_metrics  # self.log in the search steps went nowhere
    assert files_under(tmp_path) == []


def test_keyboard_interrupt_during_the_lr_search_restores_the_model(tmp_path) -> None:
    model = NoValModel(n=64)
    weights = _weights(model)
    calls = []
    step = model.training_step

    def interrupted(batch, batch_idx):
        calls.append(batch_idx)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return step(batch, batch_idx)

    model.training_step = interrupted
    handler = signal.getsignal(signal.SIGINT)
    try:
        # Lightning turns a KeyboardInterrupt inside trainer.fit into a graceful shutdown and sys.exit(1).
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            Tuner(trainer(tmp_path)).lr_find(model, num_training=20, progress_bar=False)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert len(calls) == 5
    _assert_equal(weights, _weights(model))
    assert model.hparams.learning_rate == 1e-3
    assert "log" not in model.__dict__  # the search's no-op logger is gone again
    assert files_under(tmp_path) == []


def test_failed_batch_search_restores_the_attribute(tmp_path) -> None:
    model = NoValModel(batch_size=4, n=32)
    model.training_step = lambda batch, batch_idx: (_ for _ in ()).throw(ValueError("a bug in training_step"))
    with pytest.raises(ValueError, match="a bug in training_step"):
        Tuner(trainer(tmp_path)).scale_batch_size(model, progress_bar=False)
    assert model.hparams.batch_size == 4


def test_failure_while_ranks_agree_on_the_size_restores_the_attribute(tmp_path, monkeypatch) -> None:
    # The trials have written their sizes to the attribute by the time the ranks compare results.
    def broken_reduce(trainer, size):
        raise RuntimeError("collective failed")

    monkeypatch.setattr("traenslenzor.tuner.lightning.batch_size_finder._smallest_over_ranks", broken_reduce)
    model = NoValModel(batch_size=3, n=32)  # the trials write 2 and 4
    with pytest.raises(RuntimeError, match="collective failed"):
        Tuner(trainer(tmp_path)).scale_batch_size(model, max_trials=2, progress_bar=False)
    assert model.hparams.batch_size == 3


def test_manual_optimization_and_gradient_accumulation(tmp_path) -> None:
    class Manual(NoValModel):
        def __init__(self):
            super().__init__(n=64)
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            optimizer = self.optimizers()
            loss = self._step(batch)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            return loss

    result = Tuner(trainer(tmp_path)).lr_find(Manual(), num_training=10, max_lr=0.1, progress_bar=False)
    assert len(result.results["lr"]) == 10
    model = NoValModel(n=64)
    result = Tuner(trainer(tmp_path, accumulate_grad_batches=2)).lr_find(
        model, num_training=10, max_lr=0.1, progress_bar=False, probe_batches=0
    )  # batches counted: training steps only
    assert len(result.results["lr"]) == 10
    assert len(model.batch_sizes) == 20  # two micro-batches per LR point


def test_batches_skipped_by_training_step_do_not_count_as_points(tmp_path) -> None:
    model = NoValModel(n=64)
    step = model.training_step
    attempts = []

    def every_third_skipped(batch, batch_idx):
        attempts.append(batch_idx)
        return None if batch_idx % 3 == 2 else step(batch, batch_idx)

    model.training_step = every_third_skipped
    result = Tuner(trainer(tmp_path)).lr_find(model, num_training=10, max_lr=0.1, progress_bar=False, probe_batches=0)
    assert len(result.results["lr"]) == 10
    assert attempts == list(range(14))  # 10 points and the 4 skipped batches 2, 5, 8, 11


def test_batch_search_leaves_a_shared_shuffle_generator_untouched(tmp_path) -> None:
    model = NoValModel(n=32)
    generator = torch.Generator().manual_seed(0)
    model.train_dataloader = lambda: torch.utils.data.DataLoader(
        model.data, batch_size=model.hparams.batch_size, shuffle=True, generator=generator
    )
    state = generator.get_state()
    assert Tuner(trainer(tmp_path)).scale_batch_size(model, max_val=8, progress_bar=False) == 8
    assert torch.equal(generator.get_state(), state)


@pytest.mark.parametrize(
    ("call", "kwargs", "match"),
    [
        ("lr_find", {"min_lr": 1.0, "max_lr": 1e-3}, "min_lr"),
        ("lr_find", {"num_training": 0}, "num_training"),
        ("lr_find", {"early_stop_threshold": 0.5}, "early_stop_threshold"),
        ("scale_batch_size", {"init_val": 0}, "init_val"),
        ("scale_batch_size", {"margin": 1.5}, "margin"),
        ("scale_batch_size", {"init_val": 64, "max_val": 8}, "max_val"),
        ("scale_batch_size", {"train_dataloaders": torch.utils.data.DataLoader(range(4))}, "dataloaders passed"),
    ],
)
def test_bad_arguments_fail_before_any_training(call, kwargs, match, tmp_path) -> None:
    model = NoValModel()
    with pytest.raises(ValueError, match=match):
        getattr(Tuner(trainer(tmp_path)), call)(model, progress_bar=False, **kwargs)
    assert model.batch_sizes == []
