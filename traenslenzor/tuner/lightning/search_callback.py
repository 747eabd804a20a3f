"""What the two finder callbacks share: the ``fast_dev_run`` skip and, under the Tuner, the end of the trainer call.

``LearningRateFinder`` and ``BatchSizeFinder`` each run one search from a hook; both skip it (with Lightning's
warning) under ``fast_dev_run``, and both end the trainer call right after it when the :class:`Tuner` started that
call only to search (``early_exit=True``), through the one private touch in :mod:`private`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from traenslenzor.tuner.lightning.private import end_tuning_run


class SearchCallback(Callback):
    """A callback that runs one search.

    Args:
        early_exit: end the trainer call once the search is done (the :class:`Tuner` sets it; a callback in a
            normal ``trainer.fit`` leaves it False and training goes on).
    """

    def __init__(self, *, early_exit: bool = False) -> None:
        super().__init__()
        self.early_exit = early_exit

    def skipped_for_fast_dev_run(self, trainer: pl.Trainer, name: str) -> bool:
        """Whether ``fast_dev_run`` skips the search (Lightning's warning names ``name``)."""
        if trainer.fast_dev_run:
            rank_zero_warn(f"Skipping {name} since `fast_dev_run` is enabled.")
            return True
        return False

    @contextmanager
    def ending_the_tuner_call(self) -> Iterator[None]:
        """Run the block, then end the trainer call where ``early_exit`` (not after an error: that propagates)."""
        yield
        if self.early_exit:
            end_tuning_run()
