"""The experiment configuration's typed TOML sections: one pydantic model a section, each forbidding unknown keys.

``ExperimentConfig`` is a whole file: the top-level keys (``seed``, ``stage``, ``run_name``, ``ckpt_path``,
``predict_dir``) and the sections ``[trainer_config]``, ``[module_config]`` (with ``[module_config.optimizer]``,
``[module_config.scheduler]`` and ``[module_config.finetune]``), ``[datamodule_config]`` and ``[tuner_config]``.
Each value is checked where it is declared (a range; a known backbone, strategy or suggestion rule; the tuner's own
settings), and ``ExperimentConfig`` checks the rules that join sections. Reading a file and reporting what is wrong
in it is ``loading.py``; ``docs/cli.md`` is the reference of every key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from traenslenzor.doc_classifier.data import DataModuleConfig
from traenslenzor.tuner import (
    DEFAULT_CONFIRM_BUDGET,
    DEFAULT_CONFIRM_CANDIDATES,
    BatchSearchSettings,
    BatchSizeMode,
    SweepSettings,
)

# The tuner's own defaults and checks, written once in the tuner: [tuner_config] takes its defaults from these and
# validates its values by building them (``TunerConfig._tuner_accepts``), so a bad value fails when the config loads.
_SWEEP = SweepSettings()
_BATCH = BatchSearchSettings()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CheckpointConfig(_Section):
    """``[trainer_config.checkpoint]``: keeps the best model by a validation metric."""

    enabled: bool = True
    monitor: str = "val/acc"
    mode: Literal["min", "max"] = "max"
    save_top_k: int = Field(1, ge=-1)
    save_last: bool = True


class EarlyStoppingConfig(_Section):
    """``[trainer_config.early_stopping]``: stops when the monitored metric stops improving."""

    enabled: bool = True
    monitor: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(5, ge=0)
    min_delta: float = Field(0.0, ge=0)


class WandbConfig(_Section):
    """``[trainer_config.wandb]``: the Weights & Biases run, when ``loggers`` names ``"wandb"``
    (``training/wandb_run.py``)."""

    project: str = "traenslenzor"
    entity: str | None = None  # team or user; None: wandb's default
    offline: bool = False  # write the run under <log_dir>/wandb/ only (``wandb sync`` uploads it later)


Logger = Literal["csv", "tensorboard", "wandb"]


# Strategies that run fit in processes started for that one call (spawn/fork): what the tuner writes there (the
# batch size, the LR) is lost when they end, so they are refused with tuning (``experiment.preflight``).
SPAWNING_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")  # and their *_find_unused_parameters_* variants
# Strategies that shard the model: the tuner's snapshot and restore are not made for sharded parameters yet.
SHARDING_STRATEGIES = ("fsdp", "deepspeed")  # and their variants (fsdp_cpu_offload, deepspeed_stage_3, ...)


class TrainerConfig(_Section):
    """``[trainer_config]``: Lightning ``Trainer`` settings, callbacks and where logs go."""

    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"  # "ddp" for several devices or nodes (docs/cli.md, "Multi-GPU and multi-node")
    num_nodes: int = Field(1, ge=1)
    sync_batchnorm: bool = False  # BatchNorm statistics over all processes (small per-process batches)
    precision: str = "32-true"
    max_epochs: int = Field(10, ge=-1)
    max_steps: int = Field(-1, ge=-1)
    accumulate_grad_batches: int = Field(1, ge=1)
    gradient_clip_val: float | None = Field(None, ge=0)
    limit_train_batches: float | int = Field(1.0, gt=0)
    limit_val_batches: float | int = Field(1.0, ge=0)
    limit_test_batches: float | int = Field(1.0, ge=0)
    val_check_interval: float | int = Field(1.0, gt=0)
    num_sanity_val_steps: int = Field(2, ge=-1)
    log_every_n_steps: int = Field(50, ge=1)
    deterministic: bool = False
    enable_progress_bar: bool = True
    log_dir: Path = Path(".logs")
    cpu_threads: int | None = Field(None, ge=1)  # torch.set_num_threads; None keeps torch's default
    checkpoint: CheckpointConfig = CheckpointConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    loggers: list[Logger] = ["csv", "tensorboard"]  # "wandb" needs the extra: pip install -e ".[wandb]"
    wandb: WandbConfig = WandbConfig()

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        from lightning.pytorch.strategies import StrategyRegistry

        known = {"auto", *StrategyRegistry.available_strategies()}
        if value not in known:
            common = "auto, ddp, ddp_spawn, ddp_find_unused_parameters_true, fsdp, deepspeed"
            raise ValueError(f"unknown strategy {value!r}; common ones: {common} (all: {', '.join(sorted(known))})")
        return value


class OptimizerConfig(_Section):
    """``[module_config.optimizer]``: AdamW or SGD; ``learning_rate`` is what the LR finder tunes."""

    name: Literal["adamw", "sgd"] = "adamw"
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD only
    nesterov: bool = False  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW only


class SchedulerConfig(_Section):
    """``[module_config.scheduler]``: OneCycleLR (Smith 2018), stepped every optimizer step, or none.

    ``max_lr`` unset means ``tuner_config.max_lr_factor`` x ``learning_rate`` -- the guide's "~3x the base LR".
    """

    name: Literal["onecycle", "none"] = "onecycle"
    max_lr: float | None = Field(None, gt=0)
    div_factor: float = Field(10.0, gt=0)
    final_div_factor: float = Field(1e4, gt=0)
    pct_start: float = Field(0.3, gt=0, lt=1)
    anneal_strategy: Literal["cos", "linear"] = "cos"
    cycle_momentum: bool = True
    base_momentum: float = Field(0.85, ge=0)
    max_momentum: float = Field(0.95, ge=0)
    three_phase: bool = False


class FinetuneConfig(_Section):
    """``[module_config.finetune]``: per-group LRs and freeze-then-unfreeze (docs/cli.md, "Fine-tuning").

    The head trains at ``learning_rate`` (what the LR finder suggests), every backbone parameter at
    ``backbone_lr_scale`` x it, times ``layer_decay`` per stage below the top (BEiT's layer-wise decay): the LR
    finder sweeps them together, ratios kept, and OneCycle gets one ``max_lr`` per group. ``freeze_epochs`` trains
    the head alone first (the backbone frozen; its BatchNorm layers still train unless ``train_bn = false``), then
    the whole model for the remaining epochs, each phase on its own OneCycle and, when tuned, its own LR.
    """

    backbone_lr_scale: float = Field(1.0, gt=0, le=1)  # 1.0: one LR for the whole model
    layer_decay: float = Field(1.0, gt=0, le=1)  # 1.0: none; ViT fine-tuning recipes use 0.65-0.75
    freeze_epochs: int = Field(0, ge=0)  # 0: no frozen phase
    train_bn: bool = True  # BatchNorm layers train while the backbone is frozen (fastai's and Lightning's default)


class ModuleConfig(_Section):
    """``[module_config]``: the backbone and its training objective."""

    backbone: str = "alexnet"  # a key of doc_classifier.models.BACKBONES, or "timm/<any timm.list_models() name>"
    num_classes: int = Field(16, ge=2)
    in_channels: int = Field(1, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    pretrained: bool = False
    pretrained_weights: Path | None = None
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    finetune: FinetuneConfig = FinetuneConfig()

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        from traenslenzor.doc_classifier.models.backbones import BACKBONES
        from traenslenzor.doc_classifier.models.timm_backbones import check_timm_backbone, is_timm_backbone

        if is_timm_backbone(value):
            return check_timm_backbone(value)
        if value not in BACKBONES:
            raise ValueError(f"unknown backbone {value!r}; choose one of {', '.join(BACKBONES)} or timm/<name>")
        return value

    @model_validator(mode="after")
    def _pretrained_needs_weights(self) -> ModuleConfig:
        if self.pretrained and self.pretrained_weights is None and self.backbone == "tiny_cnn":
            raise ValueError(
                "pretrained = true with backbone 'tiny_cnn' needs module_config.pretrained_weights = '<file>' (e.g. "
                "a .ckpt this app trained): no library publishes its weights; or set pretrained = false"
            )
        if not self.pretrained and self.pretrained_weights is not None:
            raise ValueError("pretrained_weights is set but pretrained = false; set pretrained = true to use it")
        return self


class TunerConfig(_Section):
    """``[tuner_config]``: arguments of ``Tuner.scale_batch_size`` and ``Tuner.lr_find``, and what to do after."""

    # batch size (scale_batch_size); defaults and checks: traenslenzor.tuner.BatchSearchSettings
    batch_size_mode: BatchSizeMode = _BATCH.mode
    init_val: int = _BATCH.init_val
    max_trials: int = _BATCH.max_trials
    steps_per_trial: int = _BATCH.steps_per_trial
    margin: float = _BATCH.margin
    max_val: int = _BATCH.max_val
    max_memory: int | float | None = _BATCH.max_memory  # bytes (an int, >= 1 MiB) or a fraction (a float in (0, 1])
    # Where memory does not bound the search (the CPU without max_memory), it stops at the batch that keeps this many
    # optimizer steps per epoch (train size / min_steps_per_epoch); 1 lifts the cap (batch_plan.search_bound).
    min_steps_per_epoch: int = Field(50, ge=1)
    # learning rate (lr_find); defaults and checks: traenslenzor.tuner.SweepSettings
    min_lr: float = _SWEEP.min_lr
    max_lr: float = _SWEEP.max_lr
    num_training: int = _SWEEP.num_training
    lr_mode: Literal["exponential", "linear"] = _SWEEP.mode
    early_stop_threshold: float | None = _SWEEP.early_stop_threshold  # "none" disables
    suggestion_method: str | None = None  # None: the tuner's default rule
    adaptive_range: bool = True  # widen the sweep past max_lr / below min_lr when the curve shows no edge
    # switching tuning on from the file (the origin project's keys; equivalent to the CLI flags)
    use_batch_size_tuning: bool = False
    use_learning_rate_tuning: bool = False
    # confirming the LR by training candidates at the run's own schedule (--confirm-learning-rate; docs/cli.md)
    confirm_learning_rate: bool = False
    confirm_budget: float = Field(DEFAULT_CONFIRM_BUDGET, gt=0, le=1)  # share of the planned training's steps
    confirm_candidates: int = Field(DEFAULT_CONFIRM_CANDIDATES, ge=2)
    # applying the results
    rescale_lr: bool = True  # a reused LR found at another global batch is rescaled (false: searched again)
    max_lr_factor: float = Field(3.0, gt=0)  # OneCycle max_lr = factor x found LR
    plot_path: Path = Path(".logs/lr_finder_plot.png")
    results_name: str = "tuning_results.json"  # written beside the plot

    @field_validator("early_stop_threshold", mode="before")
    @classmethod
    def _none_disables(cls, value: Any) -> Any:
        # TOML has no null: "none" (or false) is how a file switches the early stop off.
        if value is False or (isinstance(value, str) and value.lower() == "none"):
            return None
        return value

    @field_validator("suggestion_method")
    @classmethod
    def _known_rule(cls, value: str | None) -> str | None:
        from traenslenzor.tuner import SUGGESTIONS

        if value is not None and value not in SUGGESTIONS:
            raise ValueError(f"unknown suggestion rule {value!r}; choose one of {sorted(SUGGESTIONS)}")
        return value

    @model_validator(mode="after")
    def _tuner_accepts(self) -> TunerConfig:
        """The tuner's own checks, run now: a value it would refuse minutes later is refused at load."""
        BatchSearchSettings(
            mode=self.batch_size_mode,
            init_val=self.init_val,
            max_trials=self.max_trials,
            max_val=self.max_val,
            margin=self.margin,
            steps_per_trial=self.steps_per_trial,
            max_memory=self.max_memory,
        )
        SweepSettings(
            min_lr=self.min_lr,
            max_lr=self.max_lr,
            num_training=self.num_training,
            mode=self.lr_mode,
            early_stop_threshold=self.early_stop_threshold,
        )
        return self

    @property
    def results_path(self) -> Path:
        return self.plot_path.parent / self.results_name


class ExperimentConfig(_Section):
    """A whole experiment: what to train, on what, how, and how to tune it."""

    seed: int = 42
    stage: Literal["train", "val", "test", "predict"] = "train"
    run_name: str = Field("doc_classifier", min_length=1)
    ckpt_path: Path | None = None  # evaluated by stage val/test, used by predict; resumed from by stage train
    predict_dir: Path | None = None  # stage predict: the folder of images to classify (inference/predict.py)
    trainer_config: TrainerConfig = TrainerConfig()
    module_config: ModuleConfig = ModuleConfig()
    datamodule_config: DataModuleConfig = DataModuleConfig()
    tuner_config: TunerConfig = TunerConfig()

    @model_validator(mode="after")
    def _sections_agree(self) -> ExperimentConfig:
        channels = self.datamodule_config.channels
        if self.module_config.in_channels != channels:
            raise ValueError(
                f"module_config.in_channels ({self.module_config.in_channels}) must equal "
                f"datamodule_config.channels ({channels})"
            )
        trainer = self.trainer_config
        freeze = self.module_config.finetune.freeze_epochs
        if freeze and (trainer.max_steps != -1 or not 0 < freeze < trainer.max_epochs):
            raise ValueError(
                f"module_config.finetune.freeze_epochs = {freeze} needs trainer_config.max_epochs above it (now "
                f"{trainer.max_epochs}) and max_steps = -1 (now {trainer.max_steps}): the phases are counted in epochs"
            )
        if self.module_config.scheduler.name == "onecycle" and trainer.max_epochs == -1 and trainer.max_steps == -1:
            raise ValueError(
                "trainer_config.max_epochs = -1 (no limit) with module_config.scheduler.name = 'onecycle': OneCycle "
                "needs a finite run; set max_epochs or max_steps, or scheduler.name = 'none'"
            )
        return self

    @property
    def lightning_method(self) -> str:
        """The ``Trainer`` method that runs :attr:`stage` (and that the batch-size search sizes for)."""
        return {"train": "fit", "val": "validate", "test": "test", "predict": "predict"}[self.stage]

    def onecycle_max_lr(self, learning_rate: float | None = None) -> float | None:
        """OneCycle's peak LR: the configured ``max_lr``, else ``max_lr_factor`` x the learning rate."""
        scheduler = self.module_config.scheduler
        if scheduler.name != "onecycle":
            return None
        if scheduler.max_lr is not None and learning_rate is None:
            return scheduler.max_lr
        base = learning_rate if learning_rate is not None else self.module_config.optimizer.learning_rate
        return self.tuner_config.max_lr_factor * base
