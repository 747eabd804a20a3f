"""The oracle: held-out results of real training runs, per task and setting, averaged over seeds and cached.

An LR suggestion is judged by what training at it gives, and the grid of such runs is the expensive part of every
LR benchmark. :class:`Oracle` keeps them in one JSON file (``benchmarks/results/*_oracle_cache.json``) under the
task's hash: a task whose definition changes gets fresh entries, a cache made with fewer seeds is extended, not
redone. How a benchmark samples LRs is its own (``lr_quality``: a fixed log grid; ``lr_horizon``: a lattice that
widens towards the best point); the storage and the seeds are here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from benchmarks.common import JsonCache


class OracleTask(Protocol):
    name: str

    def key(self) -> str: ...


class Oracle:
    """Training results per task (``entry``) and setting, one value per seed, kept in a :class:`JsonCache`.

    Args:
        path: the cache file.
        read_also: another oracle's cache whose results are read (never written), e.g. ``lr_quality``'s.
        save_each_run: write the file after every training run (long runs), not only on ``save()``.
    """

    def __init__(self, path: Path, *, read_also: Path | None = None, save_each_run: bool = False) -> None:
        self.cache = JsonCache(path, read_also)
        self.save_each_run = save_each_run

    def entry(self, task: OracleTask, **tables: Any) -> dict[str, Any]:
        """The task's entry: its name and ``tables`` (the benchmark's per-setting tables) when new."""
        return self.cache.entry(task.key(), {"name": task.name, **tables})

    def seeds(self, table: dict[str, list], setting: str, seeds: Sequence[int], run: Callable[[int], Any]) -> list:
        """The values of ``seeds`` in ``table[setting]``; ``run(seed)`` for each one not stored yet (in seed order)."""
        values = table.setdefault(setting, [])
        for seed in seeds[len(values) :]:
            values.append(run(seed))
            if self.save_each_run:
                self.save()
        return values[: len(seeds)]

    def refresh(self, task: OracleTask) -> None:
        """Forget the task's results (they are trained again)."""
        self.cache.drop(task.key())

    def save(self) -> None:
        self.cache.save()
