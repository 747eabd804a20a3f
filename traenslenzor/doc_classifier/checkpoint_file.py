"""Checkpoint and weights files opened as data, never as code.

``torch.load(..., weights_only=False)`` unpickles whatever the file asks for: a ``.ckpt`` from elsewhere can run any
code the moment it is opened. Every file the app opens -- ``ckpt_path`` (predict, val/test, resuming a fit) and
``module_config.pretrained_weights`` -- is read with ``weights_only=True``: tensors, numbers, strings, lists and
dicts, which is all the app's own checkpoints and torchvision's weights hold. A file that needs more is refused with
one line naming the risk; ``--trust-checkpoint`` opens a ``ckpt_path`` the user trusts as before.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

# What torch's restricted unpickler says when the file names a class or function outside the allowed data types,
# and when it meets anything else it does not read (a file that is not a pickle at all, say).
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_DETAIL = re.compile(r"WeightsUnpickler error: ([^\n]+)")

TRUST_FLAG = "--trust-checkpoint"


class CheckpointError(ValueError):
    """A checkpoint or weights file that cannot be opened as data: unreadable, or refused because it holds code."""


def _restricted_load(path: Path, setting: str, remedy: str, *, mmap: bool = False) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found:  # the file names a class or function to call: the code it would run
            raise CheckpointError(
                f"{setting} = {str(path)!r}: refused: the file holds Python objects beyond tensors and plain data "
                f"({found.group(1)}), and opening it would run code the file chooses; {remedy}."
            ) from None
        detail = _DETAIL.search(str(exc))
        raise CheckpointError(
            f"{setting} = {str(path)!r}: not a readable checkpoint (it does not open as tensors and plain data: "
            f"{detail.group(1) if detail else type(exc).__name__})."
        ) from None
    except Exception as exc:
        raise CheckpointError(f"{setting} = {str(path)!r}: not a readable checkpoint ({type(exc).__name__}).") from None


def load_as_data(path: str | Path, *, setting: str, remedy: str, trust: bool = False) -> Any:
    """The contents of ``path`` read with ``weights_only=True`` (``trust``: unrestricted, for a file the user trusts).

    ``setting`` names where the path came from (``ckpt_path``) and ``remedy`` what to do about a refused file; both
    go into the one-line error.

    Raises:
        CheckpointError: the file needs more than data (nothing in it ran), or it is not a torch file at all.
        FileNotFoundError: there is no such file.
    """
    path = Path(path)
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False)
    return _restricted_load(path, setting, remedy)


def check_loads_as_data(path: str | Path, *, setting: str, remedy: str) -> None:
    """Refuse ``path`` unless it opens as data, before anything else opens it (Lightning's ``ckpt_path``).

    A zip-format file (what ``torch.save`` writes) is memory-mapped: its pickle is checked, its tensors are not read.
    """
    path = Path(path)
    _restricted_load(path, setting, remedy, mmap=zipfile.is_zipfile(path))
