"""--save-tuned-config: only the tuned values change, comments and layout stay, the write is atomic."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from traenslenzor.doc_classifier import atomic_file
from traenslenzor.doc_classifier.tuning.config_writer import readable_lr, save_tuned_config, update_toml

CONFIG = """\
# my experiment -- keep this comment
seed = 1

[datamodule_config]
source = "synthetic"
batch_size = 32   # replaced by --tune-batch-size

[module_config]
backbone = "tiny_cnn"

[module_config.optimizer]
# the LR the finder replaces
learning_rate = 1.0e-3
weight_decay = 0.01

[module_config.scheduler]
max_lr    = 3.0e-3   # odd spacing kept
div_factor = 10.0
"""


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b), "lines were added or removed"
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


def test_readable_lr_is_three_significant_digits() -> None:
    assert readable_lr(0.0031622776601683794) == 0.00316
    assert readable_lr(0.009486832980505138) == 0.00949
    assert readable_lr(3.98e-05) == 3.98e-05


def test_only_the_three_tuned_values_change(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(CONFIG, encoding="utf-8")
    save_tuned_config(path, batch_size=128, learning_rate=0.0031622776601683794, max_lr=0.009486832980505138)
    after = path.read_text(encoding="utf-8")
    assert _changed_lines(CONFIG, after) == [
        ("batch_size = 32   # replaced by --tune-batch-size", "batch_size = 128   # replaced by --tune-batch-size"),
        ("learning_rate = 1.0e-3", "learning_rate = 0.00316"),
        ("max_lr    = 3.0e-3   # odd spacing kept", "max_lr    = 0.00949   # odd spacing kept"),
    ]
    data = tomllib.loads(after)
    assert data["datamodule_config"]["batch_size"] == 128
    assert data["module_config"]["optimizer"]["learning_rate"] == 0.00316


def test_untuned_values_are_left_alone_and_target_can_differ(tmp_path: Path) -> None:
    source = tmp_path / "exp.toml"
    source.write_text(CONFIG, encoding="utf-8")
    target = tmp_path / "out" / "tuned.toml"
    assert save_tuned_config(source, target, batch_size=16) == target
    assert source.read_text(encoding="utf-8") == CONFIG  # the source is not touched
    assert _changed_lines(CONFIG, target.read_text(encoding="utf-8")) == [
        ("batch_size = 32   # replaced by --tune-batch-size", "batch_size = 16   # replaced by --tune-batch-size")
    ]


def test_missing_keys_and_tables_are_added() -> None:
    after = update_toml("seed = 1  # hi\n", {("module_config", "optimizer", "learning_rate"): 0.002})
    assert after.startswith("seed = 1  # hi\n")
    assert tomllib.loads(after) == {"seed": 1, "module_config": {"optimizer": {"learning_rate": 0.002}}}
    with pytest.raises(ValueError, match="is a value"):
        update_toml("module_config = 3\n", {("module_config", "optimizer", "learning_rate"): 0.002})


def test_nothing_tuned_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(CONFIG, encoding="utf-8")
    with pytest.raises(ValueError, match="Nothing was tuned"):
        save_tuned_config(path)


def test_write_is_atomic_keeps_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(CONFIG, encoding="utf-8")
    os.chmod(path, 0o640)
    save_tuned_config(path, batch_size=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.toml"]
    assert path.stat().st_mode & 0o777 == 0o640


def test_failed_replace_keeps_the_original_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(CONFIG, encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # interrupted between writing the temp file and the rename

    monkeypatch.setattr(atomic_file.os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        save_tuned_config(path, batch_size=64)
    assert path.read_text(encoding="utf-8") == CONFIG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.toml"]
