"""Per-class evaluation for ``--stage val`` and ``--stage test``: precision, recall, F1 and the confusion matrix.

One accuracy hides where a 16-class document classifier fails; several RVL-CDIP classes look alike (letter /
memo / email, form / questionnaire). After evaluating, :class:`PerClassEvaluation` logs a table of every class's
precision, recall and F1 (torchmetrics, ``average=None``) and writes ``<log_dir>/per_class_<stage>.csv`` and the
confusion matrix with the class names, ``<log_dir>/confusion_matrix_<stage>.png``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from traenslenzor.doc_classifier.atomic_file import atomic_write_text
from traenslenzor.doc_classifier.config import ExperimentConfig
from traenslenzor.doc_classifier.log import tell


@dataclass(frozen=True)
class PerClassReport:
    """Per-class scores of one evaluation; ``confusion[true][predicted]`` counts pages."""

    classes: tuple[str, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    confusion: tuple[tuple[int, ...], ...]

    @property
    def support(self) -> tuple[int, ...]:
        """Pages of each true class."""
        return tuple(sum(row) for row in self.confusion)

    @property
    def accuracy(self) -> float:
        total = sum(self.support)
        return sum(self.confusion[i][i] for i in range(len(self.classes))) / total if total else float("nan")

    def rows(self) -> list[tuple[str, float, float, float, int]]:
        return list(zip(self.classes, self.precision, self.recall, self.f1, self.support, strict=True))

    def table(self) -> str:
        """A fixed-width text table, one class a line."""
        width = max(len(name) for name in (*self.classes, "class"))
        lines = [f"{'class':<{width}}  precision  recall      f1  support"]
        for name, precision, recall, f1, support in self.rows():
            lines.append(f"{name:<{width}}  {precision:9.4f}  {recall:6.4f}  {f1:6.4f}  {support:7d}")
        return "\n".join(lines)

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for name, precision, recall, f1, support in self.rows():
            writer.writerow([name, f"{precision:.6f}", f"{recall:.6f}", f"{f1:.6f}", support])
        return buffer.getvalue()


def plot_confusion_matrix(report: PerClassReport, path: Path, title: str) -> Path:
    """The confusion matrix as a PNG: true class down, predicted class across, counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    counts = torch.tensor(report.confusion)
    n = len(report.classes)
    figure, axes = plt.subplots(figsize=(2.5 + 0.55 * n, 2 + 0.5 * n))
    try:
        axes.imshow(counts, cmap="Blues")
        axes.set_xticks(range(n), report.classes, rotation=60, ha="right")
        axes.set_yticks(range(n), report.classes)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        axes.set_title(title)
        dark = counts.max().item() / 2
        for (true, predicted), count in zip(torch.nonzero(counts).tolist(), counts[counts > 0].tolist(), strict=True):
            color = "white" if count > dark else "black"
            axes.text(predicted, true, str(count), ha="center", va="center", fontsize=7, color=color)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def _metrics(num_classes: int) -> MetricCollection:
    return MetricCollection(
        {
            "precision": MulticlassPrecision(num_classes=num_classes, average=None),
            "recall": MulticlassRecall(num_classes=num_classes, average=None),
            "f1": MulticlassF1Score(num_classes=num_classes, average=None),
            "confusion": MulticlassConfusionMatrix(num_classes=num_classes),
        }
    )


class PerClassEvaluation(Callback):
    """Collects the logits ``validation_step``/``test_step`` return; at the end logs and writes the report.

    Args:
        stage: ``"val"`` or ``"test"``, the name in the written files.
        classes: the class names, in label order.
        log_dir: where the CSV and the PNG go.
    """

    def __init__(self, stage: str, classes: Sequence[str], log_dir: Path) -> None:
        self.stage, self.classes, self.log_dir = stage, tuple(classes), Path(log_dir)
        self.metrics: MetricCollection | None = None
        self.report: PerClassReport | None = None

    def _start(self, pl_module: L.LightningModule) -> None:
        self.metrics = _metrics(len(self.classes)).to(pl_module.device)

    def _update(self, outputs: Any, batch: Any) -> None:
        if self.metrics is not None and isinstance(outputs, torch.Tensor):
            self.metrics.update(outputs, batch[1])

    def _finish(self, trainer: L.Trainer) -> None:
        if self.metrics is None:
            return
        values = {name: value.cpu() for name, value in self.metrics.compute().items()}  # synced over processes
        self.report = PerClassReport(
            classes=self.classes,
            precision=tuple(values["precision"].tolist()),
            recall=tuple(values["recall"].tolist()),
            f1=tuple(values["f1"].tolist()),
            confusion=tuple(tuple(row) for row in values["confusion"].long().tolist()),
        )
        if trainer.is_global_zero:
            self._write(self.report)

    def _write(self, report: PerClassReport) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        table_path = self.log_dir / f"per_class_{self.stage}.csv"
        atomic_write_text(table_path, report.csv_text())
        figure_path = self.log_dir / f"confusion_matrix_{self.stage}.png"
        title = f"{self.stage}: {sum(report.support)} pages, accuracy {report.accuracy:.4f}"
        plot_confusion_matrix(report, figure_path, title)
        tell("Per-class metrics (%s):\n%s", self.stage, report.table())
        tell("Per-class metrics saved to: %s; confusion matrix: %s", table_path, figure_path)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(pl_module)

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, *args: Any) -> None:
        self._update(outputs, batch)

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, *args: Any) -> None:
        self._update(outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer)


def evaluation_callbacks(config: ExperimentConfig, classes: Sequence[str]) -> list[Callback]:
    """The per-class report for stages ``val`` and ``test``; nothing for training."""
    if config.stage not in ("val", "test") or not classes:
        return []
    return [PerClassEvaluation(config.stage, classes, config.trainer_config.log_dir)]
