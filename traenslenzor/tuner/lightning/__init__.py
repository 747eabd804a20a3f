"""The Lightning adapter: ``Tuner`` (a drop-in for ``lightning.pytorch.tuner.Tuner``) and the two callbacks.

The only part of the tuner that imports Lightning (``tests/test_layering.py`` holds it to that). It sits above the
plain-PyTorch core and drives it through a ``Trainer``:

- :mod:`.tuner`: ``Tuner.lr_find`` / ``Tuner.scale_batch_size`` (argument checks, attach the callback, run the stage);
- :mod:`.learning_rate_finder`: the ``LearningRateFinder`` callback over the core's range test;
- :mod:`.batch_size_finder`: the ``BatchSizeFinder`` callback over the core's batch-size search;
- :mod:`.steps`: one training/evaluation step through the strategy, and search isolation;
- :mod:`.attributes`: LR / batch-size attribute holders and the Lightning-compatible error types;
- :mod:`.private`: the adapter's one touch of a private Lightning name.
"""

from traenslenzor.tuner.lightning.attributes import MissingAttributeError, TunerConfigurationError
from traenslenzor.tuner.lightning.batch_size_finder import BatchSizeFinder
from traenslenzor.tuner.lightning.learning_rate_finder import LearningRateFinder
from traenslenzor.tuner.lightning.tuner import Tuner

__all__ = [
    "BatchSizeFinder",
    "LearningRateFinder",
    "MissingAttributeError",
    "Tuner",
    "TunerConfigurationError",
]
