"""The experiment configuration: typed TOML sections, validated at the boundary, with dotted CLI overrides.

Every section forbids unknown keys, and a typo is reported with the file, the key and the keys that section allows
-- a silently ignored ``max_epoch = 3`` costs a night of training. ``docs/cli.md`` is the reference of every key.

``sections.py`` declares the sections (``ExperimentConfig`` and its parts); ``loading.py`` reads a file, applies the
overrides and validates (``load_config``, ``ConfigError``). Import every name from here.
"""

from __future__ import annotations

from traenslenzor.doc_classifier.config.loading import (
    ConfigError,
    allowed_keys,
    apply_overrides,
    load_config,
    parse_override,
    validate_config,
)
from traenslenzor.doc_classifier.config.sections import (
    SHARDING_STRATEGIES,
    SPAWNING_STRATEGIES,
    CheckpointConfig,
    EarlyStoppingConfig,
    ExperimentConfig,
    FinetuneConfig,
    Logger,
    ModuleConfig,
    OptimizerConfig,
    SchedulerConfig,
    TrainerConfig,
    TunerConfig,
    WandbConfig,
)

__all__ = [
    "SHARDING_STRATEGIES",
    "SPAWNING_STRATEGIES",
    "CheckpointConfig",
    "ConfigError",
    "EarlyStoppingConfig",
    "ExperimentConfig",
    "FinetuneConfig",
    "Logger",
    "ModuleConfig",
    "OptimizerConfig",
    "SchedulerConfig",
    "TrainerConfig",
    "TunerConfig",
    "WandbConfig",
    "allowed_keys",
    "apply_overrides",
    "load_config",
    "parse_override",
    "validate_config",
]
