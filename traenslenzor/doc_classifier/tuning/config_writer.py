"""Write tuned values back into a TOML config, keeping everything the user wrote.

``--save-tuned-config`` updates the config with what tuning found (:func:`save_tuning` picks what differs from
the config; :func:`save_tuned_config` writes it): ``datamodule_config.batch_size``,
``trainer_config.accumulate_grad_batches``, ``module_config.optimizer.learning_rate`` (and ``weight_decay`` when the
LR rescale moved AdamW's) and ``module_config.scheduler.max_lr`` are set with tomlkit, which keeps
comments, key order and layout; no other byte changes. The file is replaced atomically (``atomic_file.py``), so an
interrupted write never leaves a half-written config behind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomlkit
from tomlkit.items import Table

from traenslenzor.doc_classifier.atomic_file import atomic_write_text
from traenslenzor.doc_classifier.log import say

if TYPE_CHECKING:
    from traenslenzor.doc_classifier.config import ExperimentConfig
    from traenslenzor.doc_classifier.tuning.workflow import TuningOutcome

BATCH_SIZE_KEY = ("datamodule_config", "batch_size")
ACCUMULATION_KEY = ("trainer_config", "accumulate_grad_batches")
LEARNING_RATE_KEY = ("module_config", "optimizer", "learning_rate")
WEIGHT_DECAY_KEY = ("module_config", "optimizer", "weight_decay")
MAX_LR_KEY = ("module_config", "scheduler", "max_lr")


def readable_lr(value: float) -> float:
    """An LR rounded to 3 significant digits, as the log line shows it (3.16e-03 -> 0.00316)."""
    return float(f"{value:.3g}")


def tuned_values(
    batch_size: int | None = None,
    learning_rate: float | None = None,
    max_lr: float | None = None,
    *,
    accumulate_grad_batches: int | None = None,
    weight_decay: float | None = None,
) -> dict[tuple[str, ...], Any]:
    """The dotted keys to write for what was tuned; ``None`` means "not tuned, leave as it is"."""
    values: dict[tuple[str, ...], Any] = {}
    if batch_size is not None:
        values[BATCH_SIZE_KEY] = int(batch_size)
    if accumulate_grad_batches is not None:
        values[ACCUMULATION_KEY] = int(accumulate_grad_batches)
    if learning_rate is not None:
        values[LEARNING_RATE_KEY] = readable_lr(learning_rate)
    if weight_decay is not None:
        values[WEIGHT_DECAY_KEY] = readable_lr(weight_decay)
    if max_lr is not None:
        values[MAX_LR_KEY] = readable_lr(max_lr)
    return values


def _table(document: tomlkit.TOMLDocument, path: tuple[str, ...]) -> Any:
    """The (possibly nested) table at ``path``, created at the end of the file when absent."""
    node: Any = document
    for part in path:
        if part not in node:
            node[part] = tomlkit.table()
        node = node[part]
        if not isinstance(node, (Table, dict)):
            raise ValueError(f"{'.'.join(path)} is a value in the config, not a table.")
    return node


def update_toml(text: str, values: Mapping[tuple[str, ...], Any]) -> str:
    """``text`` with each dotted key set to its value; comments and layout kept."""
    document = tomlkit.parse(text)
    for key, value in values.items():
        _table(document, key[:-1])[key[-1]] = value
    return tomlkit.dumps(document)


def save_tuned_config(
    source: str | Path,
    target: str | Path | None = None,
    *,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    max_lr: float | None = None,
    accumulate_grad_batches: int | None = None,
    weight_decay: float | None = None,
) -> Path:
    """Write ``source`` with the tuned values to ``target`` (default: ``source`` itself); returns the target."""
    source = Path(source)
    target = Path(target) if target is not None else source
    values = tuned_values(
        batch_size, learning_rate, max_lr, accumulate_grad_batches=accumulate_grad_batches, weight_decay=weight_decay
    )
    if not values:
        raise ValueError("Nothing was tuned, so there is nothing to save; add --tune-batch-size/--tune-learning-rate.")
    target.parent.mkdir(parents=True, exist_ok=True)
    text = source.read_text(encoding="utf-8")
    atomic_write_text(target, update_toml(text, values))
    return target


def save_tuning(
    config_path: str | Path, target: str | Path, tuning: TuningOutcome, config: ExperimentConfig
) -> Path | None:
    """Write the values training uses into the TOML file, where they differ from the config's (nothing, with a
    warning, when nothing does): batch size, accumulation, LR, OneCycle's peak, and AdamW's weight decay when the
    LR rescale moved it.

    A batch size searched under stage val/test fits evaluation (no gradients), not training: it is not written
    as the training ``batch_size``.
    """
    stage = config.stage
    batch_size = tuning.batch_size if tuning.batch_size != config.datamodule_config.batch_size else None
    accumulation = tuning.accumulate_grad_batches
    if accumulation == config.trainer_config.accumulate_grad_batches:
        accumulation = None
    if batch_size is not None and stage != "train":
        say(
            "The batch size %d was found for stage %r (evaluation); not saved as the training batch_size.",
            batch_size,
            stage,
            level=logging.WARNING,
        )
        batch_size = accumulation = None
    if batch_size is None and accumulation is None and tuning.learning_rate is None:
        say("Nothing was found to save; %s is unchanged.", target, level=logging.WARNING)
        return None
    path = save_tuned_config(
        config_path,
        target,
        batch_size=batch_size,
        accumulate_grad_batches=accumulation,
        learning_rate=tuning.learning_rate,
        max_lr=tuning.max_lr,
        weight_decay=tuning.weight_decay,
    )
    say("  Tuned values written to: %s", path)
    return path
