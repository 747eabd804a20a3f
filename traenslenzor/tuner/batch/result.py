"""What a batch-size search returns: every trial it ran and the size it chose.

Results are frozen dataclasses that serialise to plain dicts/JSON; plotting lives in
:mod:`traenslenzor.tuner.batch.plot` and imports matplotlib only when called.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BatchSizeTrial:
    """One trial: ``steps_per_trial`` training steps at ``batch_size``.

    Attributes:
        batch_size: the size tried.
        fits: True when every step ran and the measured peak stayed within the memory budget.
        peak_memory: peak bytes measured during the trial (device allocator on CUDA, peak RSS on CPU), or None
            where the device offers no measurement or the trial failed before finishing.
        samples_per_sec: training throughput over the timed (post-warm-up) steps, None if the trial failed.
        seconds: wall time of the whole trial.
        error: why it did not fit (the out-of-memory message, or the budget overrun), None when it fits.
    """

    batch_size: int
    fits: bool
    peak_memory: int | None
    samples_per_sec: float | None
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class BatchSizeResult:
    """The chosen batch size and the evidence for it.

    Attributes:
        batch_size: the chosen size; always one that ran successfully in this search.
        mode: the search policy (a key of ``SEARCH_POLICIES``).
        trials: every trial in the order run.
        reason: why the search stopped, in words.
        budget: the memory budget in bytes the trials were held to (None if unknown).
        device: the device the trials ran on, as a string.
    """

    batch_size: int
    mode: str
    trials: tuple[BatchSizeTrial, ...]
    reason: str
    budget: int | None = None
    device: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def num_trials(self) -> int:
        return len(self.trials)

    @property
    def chosen_trial(self) -> BatchSizeTrial:
        """The successful trial at the chosen size."""
        return next(t for t in self.trials if t.fits and t.batch_size == self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (trials as a list of dicts)."""
        data = asdict(self)
        data["trials"] = [asdict(t) for t in self.trials]
        return data

    def to_json(self, path: str | Path | None = None) -> str:
        """The result as JSON text; with ``path``, also written there (UTF-8, trailing newline).

        The same convention as :meth:`LRFinderResult.to_json <traenslenzor.tuner.LRFinderResult.to_json>`.
        """
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> BatchSizeResult:
        """Load a result written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchSizeResult:
        trials = tuple(BatchSizeTrial(**t) for t in data["trials"])
        return cls(**{**data, "trials": trials})

    def plot(self, ax: Any = None, show: bool = False) -> Any:
        """Peak memory and throughput against batch size, with the budget and the chosen size; a Figure."""
        from traenslenzor.tuner.batch.plot import plot_batch_size_result

        return plot_batch_size_result(self, ax=ax, show=show)
