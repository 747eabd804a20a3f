"""The Lightning adapter: ``Tuner`` (a drop-in for Lightning's ``Tuner``) and the two callbacks, for a trainer of
either Lightning package (``lightning.pytorch`` or ``pytorch_lightning``).

The only part of the tuner that imports Lightning (``tests/test_layering.py`` holds it to that). It sits above the
plain-PyTorch core and drives it through a ``Trainer``:

- :mod:`.tuner`: ``Tuner.lr_find`` / ``Tuner.scale_batch_size`` (argument checks, attach the callback, run the stage);
- :mod:`.learning_rate_finder`: the ``LearningRateFinder`` callback over the core's range test;
- :mod:`.batch_size_finder`: the ``BatchSizeFinder`` callback over the core's batch-size search;
- :mod:`.steps`: one training/evaluation step through the strategy, and search isolation;
- :mod:`.search_callback`: what both callbacks share (the ``fast_dev_run`` skip, ending the Tuner's call);
- :mod:`.attributes`: LR / batch-size attribute holders and the Lightning-compatible error types;
- :mod:`.namespace`: the Lightning package of a trainer and the names taken from it; callbacks built per package;
- :mod:`.private`: the adapter's one touch of a private Lightning name.
"""

from traenslenzor.tuner.lightning.attributes import MissingAttributeError, TunerConfigurationError
from traenslenzor.tuner.lightning.batch_size_finder import BatchSizeFinder
from traenslenzor.tuner.lightning.learning_rate_finder import LearningRateFinder
from traenslenzor.tuner.lightning.tuner import FinderCallbacks, Tuner, callbacks_for

__all__ = [
    "BatchSizeFinder",
    "FinderCallbacks",
    "LearningRateFinder",
    "MissingAttributeError",
    "Tuner",
    "TunerConfigurationError",
    "callbacks_for",
]
