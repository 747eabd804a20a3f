"""The users' guide's log lines: their two prefixes and ``say``, the tuner's one-line logger.

A leaf module (it imports nothing of the app), so that every part of the app -- config, tuning, trainer, CLI --
can log the guide's lines without importing each other.
"""

from __future__ import annotations

import logging
import os
from typing import Any

# Named after the guide's ExperimentConfig, whose sections the app's TOML files mirror.
TUNER_PREFIX = "[ExperimentConfig::tuner]: "
TRAIN_PREFIX = "[ExperimentConfig::train]: "

log = logging.getLogger("traenslenzor.doc_classifier")


def is_rank_zero() -> bool:
    """True in the one process that logs the guide's lines and writes the plot, the record and the config.

    Read from the variables the launchers set: torchrun ``RANK``, SLURM ``SLURM_PROCID``, Lightning's own launcher
    (``strategy="ddp"`` started as one command) ``NODE_RANK`` and ``LOCAL_RANK`` in the processes it starts. Not
    from a trainer: that launcher starts the other processes later, running the script from its beginning, and
    this must answer the same before and after.
    """
    for name in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if name in os.environ:
            return int(os.environ[name]) == 0
    return os.environ.get("NODE_RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def tell(message: str, *args: Any, level: int = logging.INFO) -> None:
    """Log one training line, ``[ExperimentConfig::train]: <message>``, %-formatted with ``args``; on rank 0 only."""
    if is_rank_zero():
        log.log(level, TRAIN_PREFIX + message, *args)


def say(message: str, *args: Any, level: int = logging.INFO) -> None:
    """Log one tuner line, ``[ExperimentConfig::tuner]: <message>``, %-formatted with ``args``; on rank 0 only."""
    if is_rank_zero():
        log.log(level, TUNER_PREFIX + message, *args)
