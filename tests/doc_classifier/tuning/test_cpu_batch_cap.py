"""The batch-size search where memory does not bound it (the CPU without ``max_memory``): capped so that an epoch
keeps ``min_steps_per_epoch`` optimizer steps, said in the log before the search, and the cap is a trigger."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from traenslenzor.doc_classifier.config import ExperimentConfig, apply_overrides, validate_config
from traenslenzor.doc_classifier.experiment import run_experiment
from traenslenzor.doc_classifier.tuning.batch_plan import search_bound, steps_cap

REPO = Path(__file__).resolve().parents[3]


def _config(*overrides: str) -> ExperimentConfig:
    """The quickstart shrunk, with no memory budget and no max_val: the search a new user starts on a CPU."""
    data = tomllib.loads((REPO / ".configs/quickstart.toml").read_text(encoding="utf-8"))
    del data["tuner_config"]["max_memory"], data["tuner_config"]["max_val"]
    shrink = [
        "datamodule_config.image_size=32",
        "datamodule_config.synthetic_train_size=200",
        "datamodule_config.synthetic_val_size=16",
        "datamodule_config.synthetic_test_size=16",
        "datamodule_config.mean=0.8",
        "datamodule_config.std=0.2",
        "trainer_config.enable_progress_bar=false",
        "tuner_config.steps_per_trial=1",
    ]
    data, _ = apply_overrides(data, [*shrink, *overrides])
    return validate_config(data)


def test_steps_cap_keeps_the_steps_per_epoch_by_hand() -> None:
    assert steps_cap(640, 50) == 12  # 12 x 53 steps = 636 samples
    assert steps_cap(3200, 50) == 64  # the quickstart's own max_val
    assert steps_cap(3200, 50, world_size=2, accumulation=2) == 16  # 16 x 2 x 2 = 64 samples a step
    assert steps_cap(30, 50) == 1  # fewer samples than steps: one sample a step
    assert steps_cap(640, 1) == 640  # the cap lifted: the whole training set


def test_the_bound_names_the_cap_and_how_to_lift_it_or_keeps_a_smaller_max_val() -> None:
    capped = search_bound(8192, 50, 640)
    assert capped.max_val == 12
    assert "memory does not bound the batch" in capped.notes[0]
    assert "Capping the batch-size search at 12" in capped.notes[1]
    assert "min_steps_per_epoch = 1" in capped.notes[1] and "max_memory" in capped.notes[1]
    kept = search_bound(8, 50, 640)
    assert kept.max_val == 8 and "stops at max_val=8" in kept.notes[1]


def test_a_cpu_search_without_a_memory_budget_stops_at_the_steps_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    result = run_experiment(_config(), tune_batch_size=True, tune_only=True)

    assert result.tuning is not None and result.tuning.batch_size == 4  # 200 samples / 50 steps
    messages = [record.getMessage() for record in caplog.records]
    cap_line = next(i for i, m in enumerate(messages) if "Capping the batch-size search at 4" in m)
    assert "at least 50 optimizer steps per epoch over 200 training samples" in messages[cap_line]
    assert any("memory does not bound the batch" in m for m in messages[:cap_line])
    first_trial = next(i for i, m in enumerate(messages) if m.startswith("batch size 2 "))
    assert cap_line < first_trial  # said before the search
    tried = [int(m.split()[2]) for m in messages if m.startswith("batch size ") and ("fits" in m)]
    assert tried == [2, 4]

    caplog.clear()  # the cap is a trigger: lifting it searches again, and the log names why
    lifted = run_experiment(_config("tuner_config.min_steps_per_epoch=25"), tune_batch_size=True, tune_only=True)
    assert lifted.tuning is not None and lifted.tuning.batch_size == 8
    why = "Re-tuning the batch size: tuner settings (max_val 4 -> 8) changed"
    assert any(why in record.getMessage() for record in caplog.records)


def test_a_memory_budget_leaves_the_search_to_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    result = run_experiment(
        _config("tuner_config.max_memory=1.0", "tuner_config.max_val=8"), tune_batch_size=True, tune_only=True
    )
    assert result.tuning is not None and result.tuning.batch_size == 8  # above the steps cap of 4
    assert not any("memory does not bound" in r.getMessage() for r in caplog.records)
