"""Metrics you can compare: tuning leaves no trace on training, and a checkpoint evaluates as it trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doc_classifier.test_cli import REPO, SHRINK
from traenslenzor.doc_classifier.config import load_config
from traenslenzor.doc_classifier.experiment import run_experiment

# SHRINK without its fixed mean/std: the statistics are measured, as the quickstart does.
MEASURED = [
    flag.removeprefix("--")
    for flag in SHRINK
    if not flag.startswith(("--datamodule_config.mean", "--datamodule_config.std"))
]


def _config(*overrides: str):
    return load_config(REPO / ".configs/quickstart.toml", [*MEASURED, *overrides])


def test_a_run_that_searches_trains_exactly_as_one_that_reuses_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    searched = run_experiment(_config(), tune_batch_size=True, tune_learning_rate=True)
    reused = run_experiment(_config(), tune_batch_size=True, tune_learning_rate=True)
    assert searched.tuning.reused == () and reused.tuning.reused == ("batch_size", "learning_rate")
    assert reused.metrics == searched.metrics  # train/* too: the search's steps are not counted in epoch 0


def test_a_checkpoint_evaluates_with_the_pixel_statistics_it_was_trained_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More training pages than the 256 that evaluation would measure again (on another sample of them).
    monkeypatch.chdir(tmp_path)
    pages = ["datamodule_config.synthetic_train_size=300", "trainer_config.limit_train_batches=3"]
    trained = run_experiment(_config(*pages))
    validated = run_experiment(_config(*pages, "stage=val", f"ckpt_path={trained.best_checkpoint}"))
    assert {k: v for k, v in validated.metrics.items() if k.startswith("val/")} == {
        k: v for k, v in trained.metrics.items() if k.startswith("val/")
    }
