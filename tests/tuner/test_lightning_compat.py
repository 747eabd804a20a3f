"""Same scenarios through ``lightning.pytorch.tuner.Tuner`` and ours: the same observable effects where Lightning is
right (attributes updated on every holder and the live optimizer, result keys, suggestion type, batch-size trial
sequences with faked out-of-memory errors, errors raised)."""

from __future__ import annotations

import inspect

import pytest
import torch
from lightning.pytorch.callbacks import BatchSizeFinder as LightningBatchSizeFinder
from lightning.pytorch.callbacks import LearningRateFinder as LightningLearningRateFinder
from lightning.pytorch.tuner import Tuner as LightningTuner
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from test_lightning_models import (
    TUNERS,
    NoValModel,
    OneCycleModel,
    TinyData,
    TinyModel,
    trainer,
    trial_sizes,
)

from traenslenzor.tuner.lightning import BatchSizeFinder as OurBatchSizeFinder
from traenslenzor.tuner.lightning import LearningRateFinder as OurLearningRateFinder
from traenslenzor.tuner.lightning import Tuner as OurTuner

QUIET = {"ours": {"progress_bar": False}, "lightning": {}}

# Where the LR lives: (model attribute, model.hparams key, datamodule attribute, datamodule.hparams key).
LR_LOCATIONS = ["model.lr", "model.learning_rate", "hparams.lr", "hparams.learning_rate", "dm.lr", "dm.hparams.lr"]


def _place_lr(location: str) -> tuple[TinyModel, TinyData | None, list]:
    """A model (and datamodule) holding the LR only at ``location``; returns the objects that hold it."""
    model = NoValModel(n=128)  # 32 batches: more than the search's steps (Lightning's search ends with the epoch)
    del model.hparams["learning_rate"]
    dm = TinyData(n=128) if location.startswith("dm") else None
    owner, _, name = location.rpartition(".")
    target = {"model": model, "hparams": model.hparams, "dm": dm, "dm.hparams": dm.hparams if dm else None}[owner]
    if isinstance(target, dict):
        target[name] = 1e-3
    else:
        setattr(target, name, 1e-3)
    return model, dm, [(target, name)]


def _value(holder, name):
    return holder[name] if isinstance(holder, dict) else getattr(holder, name)


@pytest.mark.parametrize("tuner", sorted(TUNERS))
@pytest.mark.parametrize("location", LR_LOCATIONS)
def test_lr_find_writes_the_suggestion_to_the_holder_and_the_optimizer(tuner, location, tmp_path) -> None:
    model, dm, holders = _place_lr(location)
    t = trainer(tmp_path)
    result = TUNERS[tuner](t).lr_find(model, datamodule=dm, num_training=20, max_lr=0.1, **QUIET[tuner])
    lr = result.suggestion()
    assert isinstance(lr, float)
    for holder, name in holders:
        assert _value(holder, name) == lr
    assert t.optimizers[0].param_groups[0]["lr"] == lr


@pytest.mark.parametrize("tuner", sorted(TUNERS))
def test_lr_find_custom_attr_name_and_all_holders(tuner, tmp_path) -> None:
    model = NoValModel(n=128)
    model.my_lr = 1e-3
    model.hparams["my_lr"] = 1e-3
    dm = TinyData(n=128)
    dm.my_lr = 1e-3
    result = TUNERS[tuner](trainer(tmp_path)).lr_find(
        model, datamodule=dm, num_training=20, max_lr=0.1, attr_name="my_lr", **QUIET[tuner]
    )
    lr = result.suggestion()
    assert model.my_lr == model.hparams["my_lr"] == dm.my_lr == lr
    assert model.hparams["learning_rate"] == 1e-3  # not the attribute asked for


@pytest.mark.parametrize("tuner", sorted(TUNERS))
def test_lr_find_results_and_update_attr_false(tuner, tmp_path) -> None:
    model = NoValModel(n=128)
    result = TUNERS[tuner](trainer(tmp_path)).lr_find(
        model, num_training=20, max_lr=0.1, update_attr=False, **QUIET[tuner]
    )
    assert {"lr", "loss"} <= set(result.results)
    assert len(result.results["lr"]) == len(result.results["loss"]) == 20
    lrs = result.results["lr"]
    assert lrs[0] == pytest.approx(1e-8) and lrs == sorted(lrs)
    assert isinstance(result.suggestion(), float)
    assert model.hparams.learning_rate == 1e-3


@pytest.mark.parametrize("tuner", sorted(TUNERS))
def test_scale_batch_size_power_sequence_with_faked_oom(tuner, tmp_path) -> None:
    model = NoValModel(batch_size=2, n=32, oom_above=10)
    size = TUNERS[tuner](trainer(tmp_path)).scale_batch_size(model, mode="power", **QUIET[tuner])
    assert size == model.hparams.batch_size == 8
    assert trial_sizes(model.batch_sizes, 3) == [2, 4, 8, 16]


def test_scale_batch_size_binsearch_sequence_matches_lightning(tmp_path) -> None:
    runs = {}
    for name, tuner in TUNERS.items():
        model = NoValModel(batch_size=2, n=32, oom_above=10)
        size = tuner(trainer(tmp_path / name)).scale_batch_size(model, mode="binsearch", margin=0.1, **QUIET[name])
        runs[name] = (size, model.hparams.batch_size, trial_sizes(model.batch_sizes, 3))
    assert runs["lightning"] == (9, 9, [2, 4, 8, 16, 12, 10, 11])
    size, attr, sizes = runs["ours"]
    assert size == attr == 9
    # Lightning's trials, then ours verifies the margin-reduced size it returns.
    assert sizes == [*runs["lightning"][2], 9]


@pytest.mark.parametrize(
    ("tuner", "holder"),
    # Lightning once (its trials are slow); ours on every holder.
    [("ours", "model"), ("ours", "hparams"), ("ours", "dm"), ("ours", "dm.hparams"), ("lightning", "dm.hparams")],
)
def test_scale_batch_size_writes_every_holder_and_fit_uses_it(tuner, holder, tmp_path) -> None:
    model = NoValModel(batch_size=2, n=32, oom_above=10)
    dm = None
    if holder != "hparams":
        del model.hparams["batch_size"]
    if holder == "model":
        model.batch_size = 2
    elif holder.startswith("dm"):
        dm = TinyData(batch_size=2, n=32)
        if holder == "dm":
            del dm.hparams["batch_size"]
            dm.batch_size = 2
            dm.train_dataloader = lambda: torch.utils.data.DataLoader(dm.data, batch_size=dm.batch_size)
    t = trainer(tmp_path)
    size = TUNERS[tuner](t).scale_batch_size(model, datamodule=dm, **QUIET[tuner])
    assert size == 8
    obj = {"model": model, "hparams": model.hparams, "dm": dm, "dm.hparams": dm.hparams if dm else None}[holder]
    assert (obj["batch_size"] if isinstance(obj, dict) else obj.batch_size) == 8
    model.batch_sizes.clear()
    t.fit(model, datamodule=dm)  # the dataloaders are rebuilt at the new size
    assert model.batch_sizes == [8] * 4


@pytest.mark.parametrize(
    ("tuner", "method"),
    # Lightning's predict trials run the whole dataset at the first size (never limited to steps_per_trial).
    [("ours", "validate"), ("lightning", "validate"), ("ours", "test"), ("ours", "predict")],
)
def test_scale_batch_size_for_evaluation_methods(tuner, method, tmp_path) -> None:
    model = TinyModel(batch_size=2, n=32, oom_above=10)
    size = TUNERS[tuner](trainer(tmp_path)).scale_batch_size(model, method=method, **QUIET[tuner])
    assert size == model.hparams.batch_size == 8
    assert trial_sizes(model.batch_sizes, 3) == [2, 4, 8, 16]


# -- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tuner", sorted(TUNERS))
def test_missing_lr_attribute_raises_before_training(tuner, tmp_path) -> None:
    model = NoValModel()
    del model.hparams["learning_rate"]
    with pytest.raises((AttributeError, MisconfigurationException), match="learning_rate"):
        TUNERS[tuner](trainer(tmp_path)).lr_find(model, num_training=5)
    assert model.batch_sizes == []


@pytest.mark.parametrize("tuner", sorted(TUNERS))
def test_missing_batch_size_attribute_raises_before_training(tuner, tmp_path) -> None:
    model = NoValModel()
    with pytest.raises((AttributeError, MisconfigurationException), match="bs"):
        TUNERS[tuner](trainer(tmp_path)).scale_batch_size(model, batch_arg_name="bs")
    assert model.batch_sizes == []


@pytest.mark.parametrize("tuner", sorted(TUNERS))
@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("lr_find", {"mode": "cosine"}),
        ("scale_batch_size", {"mode": "bogus"}),
        ("lr_find", {"method": "train"}),
        ("scale_batch_size", {"method": "train"}),
    ],
)
def test_invalid_mode_or_method_is_a_value_error(tuner, call, kwargs, tmp_path) -> None:
    model = NoValModel()
    # Lightning's lr_find rejects any method but "fit" with a MisconfigurationException; ours raises an error that
    # is both.
    expected = (ValueError, MisconfigurationException) if tuner == "lightning" and "method" in kwargs else ValueError
    with pytest.raises(expected):
        getattr(TUNERS[tuner](trainer(tmp_path)), call)(model, **kwargs)
    assert model.batch_sizes == []


@pytest.mark.parametrize("tuner", sorted(TUNERS))
def test_lr_find_only_runs_with_method_fit(tuner, tmp_path) -> None:
    with pytest.raises(MisconfigurationException, match="method='fit'"):
        TUNERS[tuner](trainer(tmp_path)).lr_find(NoValModel(), method="validate")


@pytest.mark.parametrize("tuner", sorted(TUNERS))
@pytest.mark.parametrize(
    ("call", "callback"),
    [("lr_find", LightningLearningRateFinder), ("scale_batch_size", LightningBatchSizeFinder)],
)
def test_trainer_already_holding_a_finder_is_an_error(tuner, call, callback, tmp_path) -> None:
    t = trainer(tmp_path, callbacks=[callback()])
    with pytest.raises(ValueError, match="already configured"):
        getattr(TUNERS[tuner](t), call)(NoValModel())


@pytest.mark.parametrize("tuner", sorted(TUNERS))
@pytest.mark.parametrize("call", ["lr_find", "scale_batch_size"])
def test_fast_dev_run_returns_none_with_a_warning(tuner, call, tmp_path) -> None:
    model = NoValModel()
    with pytest.warns(UserWarning, match="fast_dev_run"):
        assert getattr(TUNERS[tuner](trainer(tmp_path, fast_dev_run=True)), call)(model) is None
    assert model.batch_sizes == []
    assert model.hparams.learning_rate == 1e-3 and model.hparams.batch_size == 4


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (OurTuner.lr_find, LightningTuner.lr_find),
        (OurTuner.scale_batch_size, LightningTuner.scale_batch_size),
        (OurLearningRateFinder.__init__, LightningLearningRateFinder.__init__),
        (OurBatchSizeFinder.__init__, LightningBatchSizeFinder.__init__),
    ],
)
def test_signatures_and_defaults_are_lightnings(ours, theirs) -> None:
    """Lightning's positional/keyword parameters, in order, with equal defaults; ours adds keyword-only options."""

    def params(fn, keyword_only: bool):
        return [
            (p.name, p.default)
            for p in inspect.signature(fn).parameters.values()
            if (p.kind == p.KEYWORD_ONLY) == keyword_only
        ]

    assert params(ours, keyword_only=False) == params(theirs, keyword_only=False)
    assert {name for name, _ in params(ours, keyword_only=True)} <= {"progress_bar", "max_memory"}


class _Shuffled(NoValModel):
    def train_dataloader(self):
        generator = torch.Generator().manual_seed(0)
        return torch.utils.data.DataLoader(self.data, batch_size=4, shuffle=True, generator=generator)


def _fit_weights(tmp_path, callbacks) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = _Shuffled(n=32)
    trainer(tmp_path, max_epochs=2, callbacks=callbacks).fit(model)
    return [t.detach().clone() for t in model.state_dict().values()]


@pytest.mark.parametrize("tuner", sorted(TUNERS))
def test_fit_with_the_lr_finder_callback_trains_exactly_as_without_it(tuner, tmp_path) -> None:
    """update_attr=False leaves no trace: same weights, RNGs, optimizer state and batch order (shuffle generator)."""
    finder = {"ours": OurLearningRateFinder, "lightning": LightningLearningRateFinder}[tuner]
    plain = _fit_weights(tmp_path / "plain", [])
    searched = _fit_weights(tmp_path / "searched", [finder(num_training_steps=12, update_attr=False, **QUIET[tuner])])
    assert all(torch.equal(a, b) for a, b in zip(plain, searched, strict=True))


def test_ours_keeps_the_batch_size_search_record(tmp_path) -> None:
    """Lightning returns only the size; ours also keeps every trial, the last of which fitted at that size."""
    model = TinyModel(oom_above=16)
    tuner = OurTuner(trainer(tmp_path))
    assert tuner.batch_size_result is None
    size = tuner.scale_batch_size(model, mode="power", max_val=64, progress_bar=False)
    record = tuner.batch_size_result
    assert record.batch_size == size == 16
    assert [t.batch_size for t in record.trials][:4] == [2, 4, 8, 16]
    assert all(t.fits for t in record.trials if t.batch_size <= 16)
    assert not any(t.fits for t in record.trials if t.batch_size > 16)
    assert record.to_dict()["batch_size"] == 16


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "exhaustive"}, "mode"),
        ({"init_val": 0}, "init_val"),
        ({"init_val": 16, "max_val": 8}, "max_val"),
        ({"max_trials": 0}, "max_trials"),
        ({"steps_per_trial": 0}, "steps_per_trial"),
        ({"margin": 1.0}, "margin"),
        ({"max_memory": 1.5}, "max_memory"),
    ],
)
def test_our_batch_size_finder_rejects_bad_settings_when_built(kwargs, match) -> None:
    # Ours only: the engine's own checks, raised as Lightning's configuration error before any trainer work.
    with pytest.raises(MisconfigurationException, match=match) as info:
        OurBatchSizeFinder(**kwargs)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "cosine"}, "mode"),
        ({"min_lr": 0.0}, "min_lr"),
        ({"min_lr": 1.0, "max_lr": 0.1}, "smaller than max_lr"),
        ({"num_training_steps": 1}, "num_training"),
        ({"early_stop_threshold": 0.5}, "early_stop_threshold"),
    ],
)
def test_our_lr_finder_rejects_bad_settings_when_built(kwargs, match) -> None:
    # Ours only: the range test's checks, raised as Lightning's configuration error before any trainer work.
    with pytest.raises(MisconfigurationException, match=match) as info:
        OurLearningRateFinder(**kwargs)
    assert isinstance(info.value, ValueError)


def test_callback_started_mid_training_warns_that_schedulers_keep_the_old_lr(tmp_path) -> None:
    """After training began the optimizer has state, so the schedulers are not rebuilt: a warning says so."""

    class LateFinder(OurLearningRateFinder):
        def on_fit_start(self, trainer, pl_module):
            pass

        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                self.lr_find(trainer, pl_module)

    model = OneCycleModel(n=16, total_steps=64)
    finder = LateFinder(num_training_steps=20, max_lr=1e-2, progress_bar=False)
    fit = trainer(tmp_path, max_epochs=2, callbacks=[finder])
    with pytest.warns(UserWarning, match="schedulers were built from the old one"):
        fit.fit(model)
    assert model.lr == finder.optimal_lr.suggestion()
    assert fit.optimizers[0].param_groups[0]["max_lr"] == 1e-4  # not rebuilt mid-training
