"""Each Lightning tuner defect, as a test that ours passes and Lightning's fails (``xfail(strict=True)``: should
Lightning fix one, the run reports it)."""

from __future__ import annotations

import math

import pytest
from lightning.pytorch.callbacks import LearningRateFinder as LightningLearningRateFinder

from tests.helpers.lightning_models import (
    MPS_OOM,
    TUNERS,
    NoValModel,
    OneCycleModel,
    TinyModel,
    files_under,
    trainer,
    trial_sizes,
)
from traenslenzor.tuner.lightning import LearningRateFinder as OurLearningRateFinder

LIGHTNING_FAILS = pytest.mark.xfail(strict=True, reason="Lightning's defect")
BOTH = [pytest.param("ours"), pytest.param("lightning", marks=LIGHTNING_FAILS)]
LR_FINDERS = {"ours": OurLearningRateFinder, "lightning": LightningLearningRateFinder}
QUIET = {"ours": {"progress_bar": False}, "lightning": {}}


def _lr_finder(name: str, **kwargs):
    return LR_FINDERS[name](**kwargs, **QUIET[name])


# -- LR finder ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", BOTH)
def test_search_started_after_training_began_runs_all_steps(lib, tmp_path) -> None:
    """Lightning #4846: started at epoch 1 (global_step > 0), Lightning's search stops at once."""

    class LateFinder(LR_FINDERS[lib]):
        def on_fit_start(self, trainer, pl_module):
            pass

        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                self.lr_find(trainer, pl_module)

    finder = LateFinder(num_training_steps=20, max_lr=1e-2, update_attr=False, **QUIET[lib])
    trainer(tmp_path, max_epochs=2, callbacks=[finder]).fit(NoValModel(n=16))
    assert len(finder.optimal_lr.results["lr"]) == 20


@pytest.mark.parametrize("lib", BOTH)
def test_callback_at_fit_start_reaches_a_scheduler_built_from_the_lr(lib, tmp_path) -> None:
    """A OneCycleLR made in configure_optimizers from ``self.lr`` follows the LR the callback found. Lightning's
    callback writes the LR into the model and the optimizer only; OneCycle resets it at its first step."""

    model = OneCycleModel(n=64, total_steps=16)
    finder = _lr_finder(lib, num_training_steps=20, min_lr=1e-6, max_lr=1.0)
    fit = trainer(tmp_path, max_steps=2, callbacks=[finder])
    fit.fit(model)
    found = finder.optimal_lr.suggestion()
    assert found is not None and model.lr == found
    assert fit.optimizers[0].param_groups[0]["max_lr"] == pytest.approx(found)


@pytest.mark.parametrize("lib", BOTH)
def test_nan_loss_stops_the_search(lib, tmp_path) -> None:
    """A NaN loss means training broke: nothing after it is information. Lightning runs on to num_training."""
    model = NoValModel(n=160, nan_above_lr=1e-3)  # 40 batches: the epoch does not end the search
    result = TUNERS[lib](trainer(tmp_path)).lr_find(
        model, min_lr=1e-6, max_lr=1.0, num_training=40, update_attr=False, **QUIET[lib]
    )
    lrs = result.results["lr"]
    first_nan = next(i for i, lr in enumerate(lrs) if lr > 1e-3)
    assert len(lrs) == first_nan + 1
    assert math.isnan(result.results["loss"][-1])


@pytest.mark.parametrize("lib", BOTH)
def test_suggestion_with_skip_end_zero(lib, tmp_path) -> None:
    """``suggestion(skip_end=0)`` keeps every point; Lightning slices ``[skip_begin:-0]`` (empty) and gives None."""
    result = TUNERS[lib](trainer(tmp_path)).lr_find(
        NoValModel(n=128), num_training=30, max_lr=0.1, update_attr=False, **QUIET[lib]
    )
    assert isinstance(result.suggestion(skip_end=0), float)


@pytest.mark.parametrize("lib", BOTH)
def test_short_epoch_neither_cuts_the_search_nor_adds_validation(lib, tmp_path) -> None:
    """Lightning #16561: the search ends with the epoch (here 5 batches, max_epochs=1) and validates inside it."""
    model = TinyModel(n=20)  # 5 batches of 4, with a validation loop
    result = TUNERS[lib](trainer(tmp_path, max_epochs=1)).lr_find(
        model, num_training=20, max_lr=1e-2, update_attr=False, **QUIET[lib]
    )
    assert len(result.results["lr"]) == 20
    assert model.val_batches == 0


@pytest.mark.parametrize("lib", BOTH)
def test_fit_after_the_search_runs_every_epoch_once(lib, tmp_path) -> None:
    """Lightning #15603: after a search inside fit, epochs are skipped or repeated; epoch hooks fire in the search."""
    model = NoValModel(n=40)  # 10 batches per epoch; the search (15 steps) is longer than one epoch
    no_probe = {"probe_batches": 0} if lib == "ours" else {}  # batches counted: training steps only
    t = trainer(tmp_path, max_epochs=3, callbacks=[_lr_finder(lib, num_training_steps=15, max_lr=1e-2, **no_probe)])
    t.fit(model)
    assert model.epochs == [0, 1, 2]
    assert len(model.batch_sizes) == 15 + 3 * 10
    assert t.global_step == 30


@pytest.mark.parametrize("lib", BOTH)
def test_no_checkpoint_is_written(lib, tmp_path, monkeypatch) -> None:
    """Lightning saves and reloads a checkpoint file around every search; ours snapshots in memory."""
    t = trainer(tmp_path)
    saves = []
    monkeypatch.setattr(t, "save_checkpoint", lambda *a, **k: saves.append(a))
    TUNERS[lib](t).lr_find(NoValModel(n=64), num_training=10, update_attr=False, **QUIET[lib])
    TUNERS[lib](t).scale_batch_size(NoValModel(n=64), max_val=4, **QUIET[lib])
    assert saves == []
    assert files_under(tmp_path) == []


# -- batch-size finder -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", BOTH)
def test_first_trial_runs_at_init_val(lib, tmp_path) -> None:
    """Lightning's first trial uses the dataloader built before it set ``init_val`` (here batch size 16)."""
    model = NoValModel(batch_size=16, n=32)
    TUNERS[lib](trainer(tmp_path)).scale_batch_size(model, init_val=2, max_val=4, **QUIET[lib])
    assert trial_sizes(model.batch_sizes, 3)[0] == 2


@pytest.mark.parametrize("lib", BOTH)
def test_max_val_is_tested_before_it_is_returned(lib, tmp_path) -> None:
    """Lightning returns the ``max_val`` cap without running it (here it would not fit)."""
    model = NoValModel(batch_size=2, n=32, oom_above=6)
    size = TUNERS[lib](trainer(tmp_path)).scale_batch_size(model, max_val=8, **QUIET[lib])
    assert size == model.hparams.batch_size == 4
    assert trial_sizes(model.batch_sizes, 3) == [2, 4, 8]


@pytest.mark.parametrize("lib", BOTH)
def test_oom_at_batch_size_one_is_a_clear_error_and_leaves_nothing(lib, tmp_path) -> None:
    """Lightning halves to 0 and crashes in the DataLoader, leaving its checkpoint file and batch_size=0."""
    model = NoValModel(batch_size=4, n=32, oom_above=0)
    with pytest.raises(RuntimeError, match=r"[Bb]atch size 1"):
        TUNERS[lib](trainer(tmp_path)).scale_batch_size(model, **QUIET[lib])
    assert files_under(tmp_path) == []
    assert model.hparams.batch_size == 4


@pytest.mark.parametrize(
    ("lib", "message"),
    [
        ("ours", MPS_OOM),
        ("ours", "XPU out of memory. Tried to allocate 2.00 GiB"),
        ("ours", "HIP out of memory. Tried to allocate 20.00 MiB"),
        pytest.param("lightning", MPS_OOM, marks=LIGHTNING_FAILS),
    ],
)
def test_mps_xpu_hip_out_of_memory_is_recognised(lib, message, tmp_path) -> None:
    model = NoValModel(batch_size=2, n=32, oom_above=10, oom_message=message)
    assert TUNERS[lib](trainer(tmp_path)).scale_batch_size(model, **QUIET[lib]) == 8
