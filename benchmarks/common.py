"""What every benchmark script needs: where results go, quiet third-party output, one JSON cache, a CPU ``Trainer``."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"  # result JSON and oracle caches, committed
NOISY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "traenslenzor")


def quiet_loggers(names: Iterable[str] = NOISY_LOGGERS) -> None:
    """Only errors from ``names`` (Lightning's and the tuner's INFO lines would drown the tables)."""
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallows an anchor's prints, progress bars and INFO logs (they cannot all be turned off by arguments)."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


class JsonCache:
    """A dict of entries kept in a JSON file; ``save`` writes the entries this process touched over the file's
    current content (runs on other keys may share the file) and renames it into place (never half-written).

    Args:
        path: the file written.
        read_also: another cache read first, never written (its entries are copied in when touched).
    """

    def __init__(self, path: Path, read_also: Path | None = None) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        for source in (read_also, path):
            if source is not None and source.exists():
                _merge(self.data, json.loads(source.read_text()))
        self.touched: set[str] = set()

    def entry(self, key: str, new: dict[str, Any]) -> dict[str, Any]:
        """The entry under ``key`` (``new`` when there is none yet), marked to be written by ``save``."""
        self.touched.add(key)
        return self.data.setdefault(key, new)

    def drop(self, key: str) -> None:
        """Forget ``key`` (``save`` removes it from the file)."""
        self.touched.add(key)
        self.data.pop(key, None)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        merged = json.loads(self.path.read_text()) if self.path.exists() else {}
        merged.update({key: self.data[key] for key in self.touched if key in self.data})
        for key in self.touched - set(self.data):
            merged.pop(key, None)
        partial = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(merged, indent=1, sort_keys=True))
        partial.replace(self.path)


def _merge(into: dict[str, Any], entries: dict[str, Any]) -> None:
    """Join a later cache file's entries to an earlier one's: their per-setting tables merged, other fields kept."""
    for key, entry in entries.items():
        mine = into.setdefault(key, entry)
        if mine is entry:
            continue
        for field, value in entry.items():
            if isinstance(value, dict) and isinstance(mine.get(field), dict):
                mine[field].update(value)
            else:
                mine.setdefault(field, value)


def cpu_trainer(root: str, **overrides: Any):  # -> lightning.pytorch.Trainer (lightning imported lazily)
    """A one-process CPU ``Trainer`` that writes nothing (no logger, checkpoint, progress bar or summary)."""
    import lightning.pytorch as pl

    settings: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": root,
    }
    return pl.Trainer(**{**settings, **overrides})
