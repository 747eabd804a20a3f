"""Weights & Biases, offline: the run's files hold the LR plot and the tuning record; a missing package is refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

from tests.doc_classifier.test_cli import REPO, SHRINK
from traenslenzor.doc_classifier import experiment
from traenslenzor.doc_classifier.cli import main
from traenslenzor.doc_classifier.config import load_config
from traenslenzor.doc_classifier.training import wandb_run

WANDB = ['--trainer_config.loggers=["csv", "wandb"]', "--trainer_config.wandb.offline=true"]


def test_an_offline_wandb_run_holds_the_lr_plot_and_the_tuning_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb")
    for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):  # nothing written outside tmp_path
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    overrides = [flag.removeprefix("--") for flag in [*SHRINK, *WANDB]]
    experiment.run_experiment(load_config(REPO / ".configs/quickstart.toml", overrides), tune_learning_rate=True)
    wandb.teardown()  # the run is finished; this waits until its service has written everything to disk

    (run,) = (tmp_path / ".logs/wandb").glob("offline-run-*")
    (image,) = (run / "files/media/images/tuning").glob("lr_finder_plot_*.png")
    with Image.open(image) as logged, Image.open(tmp_path / ".logs/lr_finder_plot.png") as plot:
        assert logged.format == "PNG" and logged.size == plot.size
    (records,) = run.glob("run-*.wandb")
    data = records.read_bytes()
    assert b"quickstart-tuning" in data and b"tuning_results.json" in data  # the artifact and its files
    assert b"lr_finder_plot.png" in data and b"val/acc" in data


def test_wandb_missing_is_refused_naming_the_extra_before_any_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))

    def no_data(config: object) -> None:
        raise AssertionError("the data was built before the loggers were checked")

    monkeypatch.setattr(experiment, "build_datamodule", no_data)
    monkeypatch.chdir(tmp_path)
    assert main(["--config_path", str(REPO / ".configs/quickstart.toml"), *SHRINK, *WANDB]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert 'pip install -e ".[wandb]"' in line and "trainer_config.loggers" in line
    assert wandb_run.wants_wandb(load_config(REPO / ".configs/quickstart.toml")) is False  # off by default
