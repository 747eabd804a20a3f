"""Freeze, then unfreeze, through the CLI: an LR found for each phase, logged, plotted, recorded, reused."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from traenslenzor.doc_classifier.cli import main

REPO = Path(__file__).resolve().parents[3]
SHRINK = [
    "--datamodule_config.image_size=32",
    "--datamodule_config.synthetic_train_size=64",
    "--datamodule_config.synthetic_val_size=16",
    "--datamodule_config.synthetic_test_size=16",
    "--datamodule_config.batch_size=16",
    "--trainer_config.max_epochs=2",
    "--trainer_config.enable_progress_bar=false",
    "--trainer_config.cpu_threads=1",
    "--tuner_config.num_training=20",
    "--module_config.finetune.freeze_epochs=1",
    "--module_config.finetune.backbone_lr_scale=0.1",
]


def _config(folder: Path) -> str:
    shutil.copy(REPO / ".configs/quickstart.toml", folder / "exp.toml")
    return str(folder / "exp.toml")


def test_two_phases_find_log_plot_record_and_reuse_an_lr_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    assert main(["--config_path", _config(tmp_path), "--tune-learning-rate", *SHRINK]) == 0
    lines = [r.getMessage() for r in caplog.records]
    head = next(line for line in lines if "✓ Suggested learning rate (head, backbone frozen): " in line)
    whole = next(line for line in lines if "✓ Suggested learning rate (whole model): " in line)
    assert lines.index(head) < lines.index(next(x for x in lines if "Phase 2 of 2" in x)) < lines.index(whole)
    assert (tmp_path / ".logs/lr_finder_plot_head.png").is_file() and (tmp_path / ".logs/lr_finder_plot.png").is_file()
    record = json.loads((tmp_path / ".logs/tuning_results.json").read_text())
    head_lr, whole_lr = record["learning_rate_head"]["values"], record["learning_rate"]["values"]
    assert whole_lr["lowest_group_learning_rate"] == pytest.approx(0.1 * whole_lr["learning_rate"])
    assert record["learning_rate"]["fingerprint"]["phase"]["head_learning_rate"] == head_lr["learning_rate"]
    # The second phase's optimizer, as training reads it: the backbone at 0.1 x the head, OneCycle's peaks too.
    effective = [line for line in lines if "param groups, head LR now=" in line][-1]
    assert "(0.1 x head)" in effective
    peak = float(re.search(r"lowest group OneCycle max_lr=([0-9.e-]+)", effective).group(1))
    assert peak == pytest.approx(0.1 * 3 * whole_lr["learning_rate"], rel=1e-5)

    caplog.clear()
    assert main(["--config_path", _config(tmp_path), "--tune-learning-rate", *SHRINK]) == 0
    lines = [r.getMessage() for r in caplog.records]
    assert sum("✓ Reusing learning rate (head, backbone frozen)" in line for line in lines) == 1
    assert sum("✓ Reusing learning rate (whole model)" in line for line in lines) == 1


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--tune-only"], "cannot be tuned without training"),
        (["--trainer_config.devices=2", "--trainer_config.strategy=ddp"], "runs in one process"),
        (["--trainer_config.max_epochs=1"], "needs trainer_config.max_epochs above it"),
    ],
)
def test_what_two_phases_cannot_do_is_one_line_before_any_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
) -> None:
    from traenslenzor.doc_classifier import experiment

    def no_data(config: object) -> None:
        raise AssertionError("the data was built before the config was checked")

    monkeypatch.setattr(experiment, "build_datamodule", no_data)
    assert main(["--config_path", _config(tmp_path), "--tune-learning-rate", *SHRINK, *flags]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert expected in line
