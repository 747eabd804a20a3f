"""The tuner: LR range test (``find_lr`` / ``Tuner.lr_find``) and batch-size finder (``Tuner.scale_batch_size``).

Names are imported lazily so that ``from traenslenzor.tuner import find_lr`` never imports Lightning; only
``Tuner`` and the callbacks do.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # Lightning adapter (imports lightning)
    "Tuner": "lightning",
    "LearningRateFinder": "lightning",
    "BatchSizeFinder": "lightning",
    "MissingAttributeError": "lightning",
    "TunerConfigurationError": "lightning",
    # LR range test on plain PyTorch
    "find_lr": "lr_finder",
    "LRFinderResult": "lr_result",
    "RangeTest": "lr_sweep",
    "SweepSettings": "lr_settings",
    "StopReason": "lr_settings",
    "AdaptiveRange": "lr_adaptive",
    "SUGGESTIONS": "suggestion",
    "DEFAULT_SUGGESTION": "suggestion",
    "Finding": "lr_diagnostics",
    "rescale_lr": "lr_rescale",
    "rescale_weight_decay": "lr_rescale",
    "rule_for_optimizer": "lr_rescale",
    # batch-size finder
    "find_batch_size": "batch_finder",
    "search_batch_size": "batch_runner",
    "BatchSearchSettings": "batch_runner",
    "BatchSizeNotFoundError": "batch_runner",
    "SEARCH_POLICIES": "batch_search",
    "BatchSizeMode": "batch_search",
    "BatchSizeResult": "batch_result",
    "BatchSizeTrial": "batch_result",
    "is_oom_error": "oom",
    # shared
    "TrainingState": "state",
    "preserved_training_state": "state",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'traenslenzor.tuner' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return __all__
