"""The users' guide's log lines: their two prefixes and ``say``, the tuner's one-line logger.

A leaf module (it imports nothing of the app), so that every part of the app -- config, tuning, trainer, CLI --
can log the guide's lines without importing each other.
"""

from __future__ import annotations

import logging
from typing import Any

# Named after the guide's ExperimentConfig, whose sections the app's TOML files mirror.
TUNER_PREFIX = "[ExperimentConfig::tuner]: "
TRAIN_PREFIX = "[ExperimentConfig::train]: "

log = logging.getLogger("traenslenzor.doc_classifier")


def say(message: str, *args: Any, level: int = logging.INFO) -> None:
    """Log one tuner line, ``[ExperimentConfig::tuner]: <message>``, %-formatted with ``args``."""
    log.log(level, TUNER_PREFIX + message, *args)
