"""``--stage predict``: classify every image file under a folder with a trained checkpoint.

::

    python traenslenzor/doc_classifier/run.py --config_path .configs/quickstart.toml \\
        --stage predict --ckpt_path BEST.ckpt --predict_dir scans/

Every TIFF, PNG and JPEG under the folder (any size, grayscale or colour) goes through the config's evaluation
transform, normalised with the pixel statistics the checkpoint was trained with, and is classified in batches with
a progress bar. The result is ``<log_dir>/predictions.csv``: one row per file with the predicted class, its
probability and the top three, written in one step. A file that cannot be decoded is logged and skipped (a damaged
scan must not end a run at file 9,000 of 10,000). Everything that can be checked before the first image is read --
the folder holds images, the checkpoint opens as data and is one of this config's model -- is checked first: a bad
one is one ``ConfigError`` (or ``CheckpointError``) line (exit status 2).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from traenslenzor.doc_classifier.atomic_file import atomic_write_text
from traenslenzor.doc_classifier.checkpoint_file import TRUST_FLAG, CheckpointError, load_as_data
from traenslenzor.doc_classifier.config import ConfigError, ExperimentConfig
from traenslenzor.doc_classifier.data import RVL_CDIP_CLASSES, DocDataModule
from traenslenzor.doc_classifier.data.page_io import DECODE_ERRORS, open_page
from traenslenzor.doc_classifier.data.transforms import build_transform
from traenslenzor.doc_classifier.log import tell
from traenslenzor.doc_classifier.training.module import DocClassifier

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg"})
PREDICTIONS_NAME = "predictions.csv"
TOP_K = 3
# What a checkpoint must match in the config: the model it builds and the input it expects.
_MODEL_KEYS = ("backbone", "num_classes", "in_channels")


@dataclass(frozen=True)
class Prediction:
    """One file's classes, most probable first (the top ``TOP_K``)."""

    path: str
    top: tuple[tuple[str, float], ...]

    @property
    def predicted(self) -> str:
        return self.top[0][0]

    @property
    def probability(self) -> float:
        return self.top[0][1]


@dataclass(frozen=True)
class PredictionRun:
    """What ``--stage predict`` did: the predictions, the files it skipped, and where the CSV is."""

    predictions: tuple[Prediction, ...]
    unreadable: tuple[str, ...]
    csv_path: Path


# --- checks before any work ----------------------------------------------------------------------------------------


def find_images(folder: Path | None) -> list[Path]:
    """The image files under ``folder`` (recursively, sorted); a missing folder or one without images is refused."""
    if folder is None:
        raise ConfigError("--stage predict needs --predict_dir DIR: the folder of images to classify.")
    if not Path(folder).is_dir():
        raise ConfigError(f"predict_dir = {str(folder)!r}: not a folder.")
    images = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ConfigError(f"predict_dir = {str(folder)!r} holds no image files ({suffixes}); nothing to classify.")
    return images


# What to do about a ``ckpt_path`` refused because opening it would run code (``checkpoint_file.py``).
CKPT_REMEDY = f"open only a file you trust (your own training's), with {TRUST_FLAG}"


def load_checkpoint(config: ExperimentConfig, *, trust: bool = False) -> dict[str, Any]:
    """The checkpoint named by ``ckpt_path`` -- as data unless ``trust`` (``checkpoint_file.py``) -- checked against
    the config's model before any image is read."""
    path = config.ckpt_path
    if path is None:
        raise ConfigError("--stage predict needs --ckpt_path: the trained checkpoint (.ckpt) to classify with.")
    try:
        checkpoint = load_as_data(path, setting="ckpt_path", remedy=CKPT_REMEDY, trust=trust)
    except FileNotFoundError:
        raise ConfigError(f"ckpt_path = {str(path)!r}: checkpoint file not found.") from None
    except CheckpointError:
        raise
    except Exception as exc:  # a trusted file that fails to unpickle
        raise ConfigError(f"ckpt_path = {str(path)!r}: not a readable checkpoint ({type(exc).__name__}).") from None
    check_compatible(checkpoint, config)
    return checkpoint


def check_compatible(checkpoint: Any, config: ExperimentConfig) -> None:
    """Refuse a checkpoint of another backbone, number of classes, input channels or image size than the config's."""
    path = str(config.ckpt_path)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    saved = hparams.get("module_config")
    if not isinstance(saved, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"ckpt_path = {path!r}: not a checkpoint of this app's classifier (no module_config).")
    wanted = config.module_config.model_dump()
    expected = {**{key: wanted[key] for key in _MODEL_KEYS}, "image_size": config.datamodule_config.image_size}
    found = {**{key: saved.get(key) for key in _MODEL_KEYS}, "image_size": hparams.get("image_size")}
    differ = [f"{key} {found[key]!r} (config: {expected[key]!r})" for key in expected if found[key] != expected[key]]
    if differ:
        raise ConfigError(
            f"ckpt_path = {path!r} was trained with {', '.join(differ)}; use the config it was trained with, or "
            "a checkpoint of this config's model."
        )


# --- the model and its input ---------------------------------------------------------------------------------------


def build_classifier(checkpoint: dict[str, Any]) -> DocClassifier:
    """The trained classifier, in eval mode; the weights come from the checkpoint, never from pretrained files."""
    hparams = dict(checkpoint["hyper_parameters"])
    hparams["module_config"] = {**hparams["module_config"], "pretrained": False, "pretrained_weights": None}
    model = DocClassifier(**hparams)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def normalisation(checkpoint: dict[str, Any], config: ExperimentConfig) -> tuple[float, float]:
    """The pixel statistics the checkpoint was trained with; measured as training does for an older checkpoint."""
    state = checkpoint.get(DocDataModule.__qualname__, {})
    if "mean" in state:  # no dataset needed: predicting works where only the checkpoint and the scans are
        return float(state["mean"]), float(state["std"])
    message = "The checkpoint holds no pixel statistics (saved by an older version); measuring them on training pages."
    tell(message, level=logging.WARNING)
    return DocDataModule(config.datamodule_config).normalisation()


class ImageFiles(Dataset):
    """Image files decoded to grayscale pages and transformed; an unreadable one yields ``None`` (see ``_batch``)."""

    def __init__(
        self, paths: Sequence[Path], image_size: int, transform: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        self.paths, self.image_size, self.transform = list(paths), image_size, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            return index, self.transform(open_page(self.paths[index], self.image_size)), ""
        except DECODE_ERRORS as exc:
            return index, None, f"{type(exc).__name__}: {exc}"


def _batch(items: list[tuple[int, torch.Tensor | None, str]]) -> tuple[list[int], torch.Tensor | None, list[Any]]:
    """Collate the readable pages of a batch; the unreadable ones travel beside them as ``(index, reason)``."""
    good = [(index, page) for index, page, _ in items if page is not None]
    failed = [(index, reason) for index, page, reason in items if page is None]
    pages = torch.stack([page for _, page in good]) if good else None
    return [index for index, _ in good], pages, failed


# --- the run -------------------------------------------------------------------------------------------------------


def _device(config: ExperimentConfig) -> torch.device:
    wants_gpu = config.trainer_config.accelerator in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def classify(
    model: DocClassifier, loader: DataLoader, paths: Sequence[Path], progress: bool
) -> tuple[list[Prediction], list[str]]:
    """Run ``model`` over ``loader``'s batches; returns the predictions and the unreadable files."""
    device = next(model.parameters()).device
    classes = RVL_CDIP_CLASSES
    predictions, unreadable = [], []
    with torch.inference_mode():
        for indices, pages, failed in tqdm(loader, desc="Classifying", unit="batch", disable=not progress):
            for index, reason in failed:
                log.warning("Skipping unreadable image %s (%s)", paths[index], reason)
                unreadable.append(str(paths[index]))
            if pages is None:
                continue
            probabilities = torch.softmax(model(pages.to(device)).float(), dim=1)
            top = probabilities.topk(min(TOP_K, probabilities.shape[1]), dim=1)
            for index, values, labels in zip(indices, top.values.tolist(), top.indices.tolist(), strict=True):
                ranked = tuple((classes[label], value) for label, value in zip(labels, values, strict=True))
                predictions.append(Prediction(str(paths[index]), ranked))
    return predictions, unreadable


def predictions_csv(predictions: Sequence[Prediction]) -> str:
    """``path,predicted_class,probability,top3`` with ``top3`` as ``class=probability`` joined by ``;``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "predicted_class", "probability", f"top{TOP_K}"])
    for p in predictions:
        writer.writerow([p.path, p.predicted, f"{p.probability:.6f}", ";".join(f"{c}={v:.6f}" for c, v in p.top)])
    return buffer.getvalue()


def run_prediction(config: ExperimentConfig, *, trust_checkpoint: bool = False) -> PredictionRun:
    """Classify every image under ``config.predict_dir`` with ``config.ckpt_path`` (opened as data unless
    ``trust_checkpoint``); write the CSV."""
    paths = find_images(config.predict_dir)
    checkpoint = load_checkpoint(config, trust=trust_checkpoint)
    mean, std = normalisation(checkpoint, config)
    dc = config.datamodule_config
    transform = build_transform("val", dc.image_size, dc.channels, mean, std)
    model = build_classifier(checkpoint).to(_device(config))
    del checkpoint
    loader = DataLoader(
        ImageFiles(paths, dc.image_size, transform),
        batch_size=dc.eval_batch_size or dc.batch_size,
        num_workers=dc.num_workers,
        collate_fn=_batch,
    )
    tell("Classifying %d image files under %s with %s...", len(paths), config.predict_dir, config.ckpt_path)
    predictions, unreadable = classify(model, loader, paths, config.trainer_config.enable_progress_bar)
    csv_path = config.trainer_config.log_dir / PREDICTIONS_NAME
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(csv_path, predictions_csv(predictions))
    if unreadable:
        tell("%d unreadable files skipped (listed above).", len(unreadable), level=logging.WARNING)
    tell("Predictions for %d files saved to: %s", len(predictions), csv_path)
    return PredictionRun(tuple(predictions), tuple(unreadable), csv_path)
