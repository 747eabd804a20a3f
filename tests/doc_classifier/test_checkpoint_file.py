"""Checkpoints and weights load as data: a file carrying a pickled callable is refused by every path that opens one
(predict, val/test, resuming a fit, pretrained weights), exit 2 with one line, and nothing in it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from tests.doc_classifier.test_cli import REPO, SHRINK
from traenslenzor.doc_classifier.checkpoint_file import CheckpointError, load_as_data
from traenslenzor.doc_classifier.cli import main
from traenslenzor.doc_classifier.models.backbones import read_state_dict

CONFIG = REPO / ".configs/quickstart.toml"


class _Payload:
    """Unpickled, it calls ``open(marker, "w")``: the marker file is the proof that code in the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """(a checkpoint shaped like the app's, carrying the payload; the marker it would create)."""
    marker = tmp_path / "code_ran"
    path = tmp_path / "hostile.ckpt"
    checkpoint = {
        "state_dict": {"model.weight": torch.zeros(2)},
        "hyper_parameters": {"module_config": {"backbone": "tiny_cnn"}, "image_size": 32},
        "callbacks": {"payload": _Payload(marker)},
    }
    torch.save(checkpoint, path)
    return path, marker


def _run(*flags: str) -> int:
    return main(["--config_path", str(CONFIG), *SHRINK, *flags])


def _pages(folder: Path) -> None:
    """One page to classify under ``folder/pages``."""
    (folder / "pages").mkdir()
    Image.new("L", (32, 32), 255).save(folder / "pages" / "page.png")


@pytest.mark.parametrize(
    "flags",
    [
        ("--stage", "predict", "--predict_dir", "pages"),
        ("--stage", "val"),
        ("--stage", "test"),
        ("--stage", "train"),  # resuming a fit from ckpt_path
    ],
    ids=["predict", "val", "test", "resume"],
)
def test_every_ckpt_path_reader_refuses_a_checkpoint_that_would_run_code(
    hostile: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
) -> None:
    path, marker = hostile
    monkeypatch.chdir(tmp_path)
    _pages(tmp_path)
    assert _run(*flags, f"--ckpt_path={path}") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ckpt_path = ") and "refused" in error
    assert "run code" in error and "--trust-checkpoint" in error and "io.open" in error
    assert not marker.exists()


def test_pretrained_weights_that_would_run_code_are_refused_before_any_data(
    hostile: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, marker = hostile
    monkeypatch.chdir(tmp_path)
    flags = ("--module_config.pretrained=true", f"--module_config.pretrained_weights={path}")
    assert _run(*flags) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: module_config.pretrained_weights = ") and "refused" in error
    assert not marker.exists() and not (tmp_path / ".logs").exists()  # no data rendered, nothing trained
    with pytest.raises(CheckpointError, match="refused"):  # the library path (models.py) refuses it too
        read_state_dict(path)
    assert not marker.exists()


def test_trust_checkpoint_opens_the_file_unrestricted(
    hostile: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The opt-in is real: the file is unpickled as it is (here: it then fails as not this app's checkpoint).
    path, marker = hostile
    monkeypatch.chdir(tmp_path)
    _pages(tmp_path)
    flags = ("--stage", "predict", "--predict_dir", "pages", f"--ckpt_path={path}", "--trust-checkpoint")
    assert _run(*flags) == 2
    assert "refused" not in capsys.readouterr().err
    assert marker.exists()


def test_a_file_that_is_no_checkpoint_is_one_line_not_a_refusal(tmp_path: Path) -> None:
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"not a readable checkpoint") as caught:
        load_as_data(path, setting="ckpt_path", remedy="-")
    assert "refused" not in str(caught.value)


def test_lightning_is_asked_to_load_ckpt_path_as_data_unless_trusted() -> None:
    # The check before the run is the guard; Lightning's own load of ckpt_path is held to data as well.
    import lightning as L

    from traenslenzor.doc_classifier.experiment import _checkpoint_kwargs

    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    for method in (trainer.fit, trainer.validate, trainer.test):
        assert _checkpoint_kwargs(method, trust=False) == {"weights_only": True}
        assert _checkpoint_kwargs(method, trust=True) == {"weights_only": False}
