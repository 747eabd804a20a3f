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
