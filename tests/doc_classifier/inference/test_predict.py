"""``--stage predict``: a folder of saved pages classified with a checkpoint, as a user runs it."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.doc_classifier.test_cli import REPO, SHRINK
from traenslenzor.doc_classifier.cli import main
from traenslenzor.doc_classifier.config import load_config
from traenslenzor.doc_classifier.data import RVL_CDIP_CLASSES, DocDataModule, open_split
from traenslenzor.doc_classifier.experiment import run_experiment
from traenslenzor.doc_classifier.training.module import DocClassifier

CONFIG = REPO / ".configs/quickstart.toml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A quickstart model trained for one tiny epoch: (its folder, its best checkpoint)."""
    folder = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = run_experiment(load_config(CONFIG, [flag.removeprefix("--") for flag in SHRINK]))
        checkpoint = Path(result.best_checkpoint).resolve()
    yield folder, checkpoint


def _predict(cwd: Path, checkpoint: Path, folder: Path, *extra: str) -> int:
    return main(["--config_path", str(CONFIG), *SHRINK, "--stage", "predict", f"--ckpt_path={checkpoint}",
                 "--predict_dir", str(folder), *extra])  # fmt: skip


def _save_pages(folder: Path) -> dict[str, int]:
    """Test pages of known classes written as PNG (lossless, model size), JPEG (RGB, other size) and TIFF;
    returns {PNG path: index in the test split}."""
    config = load_config(CONFIG, [flag.removeprefix("--") for flag in SHRINK]).datamodule_config
    pages = open_split(config, "test")
    exact = {}
    for index in range(len(pages)):
        page, label = pages[index]
        gray = Image.fromarray(page[0].numpy(), mode="L")
        path = folder / RVL_CDIP_CLASSES[label] / f"page{index:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if index < 12:
            gray.save(path)
            exact[str(path)] = index
        elif index < 14:
            gray.convert("RGB").resize((50, 70)).save(path.with_suffix(".jpg"))
        else:
            gray.save(path.with_suffix(".tiff"))
    return exact


def test_predict_classifies_saved_pages_as_the_model_does_in_memory_and_skips_bad_files(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, checkpoint = trained
    scans = tmp_path / "scans"
    exact = _save_pages(scans)
    (scans / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    (scans / "notes.txt").write_text("not an image", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    assert _predict(tmp_path, checkpoint, scans) == 0

    with open(tmp_path / ".logs/predictions.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and not any("broken" in row["path"] or "notes" in row["path"] for row in rows)
    assert list(rows[0]) == ["path", "predicted_class", "probability", "top3"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("Skipping unreadable image" in m and "broken.png" in m for m in warnings)
    assert any("1 unreadable files skipped" in m for m in warnings)

    model = DocClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    datamodule = DocDataModule(load_config(CONFIG, [f.removeprefix("--") for f in SHRINK]).datamodule_config)
    for row in rows:
        top = [item.rsplit("=", 1) for item in row["top3"].split(";")]
        assert len(top) == 3 and top[0] == [row["predicted_class"], row["probability"]]
        assert [float(p) for _, p in top] == sorted((float(p) for _, p in top), reverse=True)
        if row["path"] in exact:  # the very page the test split holds: exactly the in-memory prediction
            page = datamodule.dataset("test")[exact[row["path"]]][0]
            with torch.inference_mode():
                probabilities = torch.softmax(model(page[None]), dim=1)[0]
            assert row["predicted_class"] == RVL_CDIP_CLASSES[int(probabilities.argmax())]
            assert float(row["probability"]) == pytest.approx(float(probabilities.max()), abs=1e-6)
    assert {row["path"] for row in rows} >= set(exact)


def test_predict_dir_without_stage_predict_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config_path", str(CONFIG), "--predict_dir", str(tmp_path)]) == 2
    assert "--predict_dir needs --stage predict" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("problem", "extra", "message"),
    [
        ("empty folder", [], "holds no image files"),
        ("other backbone", ["--module_config.backbone=alexnet"], "backbone 'tiny_cnn' (config: 'alexnet')"),
        ("other classes", ["--module_config.num_classes=10"], "num_classes 16 (config: 10)"),
        ("not a checkpoint", [], "not a readable checkpoint"),
    ],
)
def test_predict_refuses_bad_input_in_one_line_before_any_work(
    trained: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    problem: str,
    extra: list[str],
    message: str,
) -> None:
    _, checkpoint = trained
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "readme.txt").write_text("no images here", encoding="utf-8")
    if problem != "empty folder":
        Image.new("L", (32, 32), 255).save(scans / "page.png")
    if problem == "not a checkpoint":
        checkpoint = scans / "readme.txt"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert _predict(tmp_path, checkpoint, scans, *extra) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert not (tmp_path / ".logs").exists()  # nothing written


def test_the_apps_own_checkpoint_opens_as_data(trained: tuple[Path, Path]) -> None:
    # Every state a training run saves (loops, callbacks, optimizer, OneCycle, the pixel statistics) is plain data,
    # so predict, val/test and resuming never need to unpickle code (checkpoint_file.py).
    _, checkpoint = trained
    loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert {"state_dict", "loops", "callbacks", "optimizer_states", "lr_schedulers", "DocDataModule"} <= set(loaded)
