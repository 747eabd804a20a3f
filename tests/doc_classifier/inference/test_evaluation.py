"""Per-class evaluation: the report's arithmetic, and what --stage val/test writes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from tests.doc_classifier.test_cli import REPO, SHRINK
from traenslenzor.doc_classifier.config import load_config
from traenslenzor.doc_classifier.experiment import run_experiment
from traenslenzor.doc_classifier.inference.evaluation import PerClassReport


def test_report_support_accuracy_table_and_csv_from_a_hand_made_matrix() -> None:
    report = PerClassReport(
        classes=("letter", "memo"),
        precision=(2 / 3, 0.5),
        recall=(2 / 3, 0.5),
        f1=(2 / 3, 0.5),
        confusion=((2, 1), (1, 1)),
    )
    assert report.support == (3, 2) and report.accuracy == pytest.approx(3 / 5)
    assert report.table().splitlines()[1].split() == ["letter", "0.6667", "0.6667", "0.6667", "3"]
    rows = list(csv.reader(report.csv_text().splitlines()))
    assert rows[0] == ["class", "precision", "recall", "f1", "support"]
    assert rows[1:] == [
        ["letter", "0.666667", "0.666667", "0.666667", "3"],
        ["memo", "0.500000", "0.500000", "0.500000", "2"],
    ]


@pytest.mark.parametrize("stage", ["val", "test"])
def test_stage_writes_per_class_csv_and_a_confusion_matrix_whose_counts_add_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, stage: str
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    overrides = [flag.removeprefix("--") for flag in SHRINK] + [f"stage={stage}"]
    result = run_experiment(load_config(REPO / ".configs/quickstart.toml", overrides))
    pages = {"val": 32, "test": 16}[stage]  # SHRINK's split sizes

    with open(tmp_path / f".logs/per_class_{stage}.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["class"] for row in rows][:3] == ["letter", "form", "email"] and len(rows) == 16
    assert sum(int(row["support"]) for row in rows) == pages
    recall = sum(float(row["recall"]) * int(row["support"]) for row in rows)  # = correctly classified pages
    assert recall / pages == pytest.approx(result.metrics[f"{stage}/acc"], abs=1e-5)
    assert any("Per-class metrics (" in r.getMessage() and "memo" in r.getMessage() for r in caplog.records)

    with Image.open(tmp_path / f".logs/confusion_matrix_{stage}.png") as image:
        image.verify()
    with Image.open(tmp_path / f".logs/confusion_matrix_{stage}.png") as image:
        assert image.format == "PNG" and min(image.size) > 300
    assert not list((tmp_path / ".logs").glob(".*.tmp"))
