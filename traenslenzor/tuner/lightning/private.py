"""The adapter's only touch of a private Lightning name.

Everything else in the Lightning adapter uses public API (callbacks, hooks, ``trainer.fit``, the strategy's and the
precision plugin's public methods).
"""

from __future__ import annotations

import importlib
from typing import NoReturn


def end_tuning_run(package: str) -> NoReturn:
    """End the ``trainer.fit``/``validate``/... call that the Tuner started, right after the search.

    Private because Lightning offers no public way: ``_TunerExitException`` is what Lightning's own Tuner raises,
    and the trainer's entry points catch it and tear down cleanly (status FINISHED). Any other exception would be
    re-raised to the user and, under DDP's subprocess launcher, kill the other ranks; ``trainer.should_stop`` would
    still run the sanity check and build the dataloaders of the fit the Tuner does not want.

    ``package`` is the trainer's Lightning package (``lightning.pytorch`` or ``pytorch_lightning``): each has its own
    exception class, and a trainer catches only its own.
    """
    exceptions = importlib.import_module(f"{package}.utilities.exceptions")
    raise exceptions._TunerExitException()
