"""Freeze, then unfreeze: fine-tuning in two phases, each with its own OneCycle and, when tuned, its own LR.

``[module_config.finetune] freeze_epochs = N`` trains the head alone for N epochs (the backbone frozen; its
BatchNorm layers train unless ``train_bn = false``), then the whole model for the remaining epochs, as fastai's
``fine_tune`` does. Each phase is a ``fit`` of its own, with a OneCycle over that phase's epochs; the second phase's
optimizer starts the backbone's groups fresh and carries the head's state over (``CarryHeadState``). With
``--tune-learning-rate`` the LR is found for each phase from the state the phase starts from (the guide's "after
unfreezing backbone"): the head's from the pretrained start, the whole model's from the head-trained weights. Both
are logged, plotted (``<plot>_head.png`` and ``<plot>.png``) and recorded (``learning_rate_head`` and
``learning_rate`` in the tuning record), each reused only while its start is unchanged. The batch size is searched
on the whole model, which needs the most memory. ``--confirm-learning-rate`` confirms the whole-model phase.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from traenslenzor.doc_classifier.config import ConfigError, ExperimentConfig
from traenslenzor.doc_classifier.log import say
from traenslenzor.doc_classifier.training.finetune import CarryHeadState
from traenslenzor.doc_classifier.training.trainer import build_tuning_trainer
from traenslenzor.doc_classifier.tuning.steps import LRPhase
from traenslenzor.doc_classifier.tuning.workflow import TuningOutcome, run_tuning

HEAD_LABEL = "head, backbone frozen"
WHOLE_LABEL = "whole model"


def preflight_phases(config: ExperimentConfig, *, tune_only: bool, saving: bool) -> None:
    """What two phases cannot do, refused in one line before any data, model or process is made."""
    freeze = config.module_config.finetune.freeze_epochs
    if tune_only or saving:
        raise ConfigError(
            f"--tune-only/--save-tuned-config with freeze_epochs = {freeze}: the whole model's LR is found from the "
            "head-trained weights, so it cannot be tuned without training; drop the flag (or set freeze_epochs = 0)."
        )
    if config.ckpt_path is not None:
        raise ConfigError(
            f"ckpt_path with freeze_epochs = {freeze}: a resumed run has no frozen phase to resume; to fine-tune "
            "from a checkpoint set module_config.pretrained_weights = '<.ckpt>' instead of ckpt_path."
        )
    tc = config.trainer_config
    processes = tc.devices * tc.num_nodes if isinstance(tc.devices, int) and tc.devices > 0 else None
    if processes is None:
        processes = build_tuning_trainer(config).world_size  # a Trainer built, not run: it resolves "auto"
    if processes > 1:
        raise ConfigError(
            f"freeze_epochs = {freeze} runs in one process, but this run would start {processes} (devices = "
            f"{tc.devices!r}, num_nodes = {tc.num_nodes}); use devices = 1, or freeze_epochs = 0 with several devices."
        )


def phase_config(config: ExperimentConfig, phase: str) -> ExperimentConfig:
    """The config one phase trains with: its epochs, and (head phase) the plot beside the whole model's."""
    freeze = config.module_config.finetune.freeze_epochs
    tc, tuner = config.trainer_config, config.tuner_config
    if phase == "head":
        plot = tuner.plot_path.with_name(f"{tuner.plot_path.stem}_head{tuner.plot_path.suffix}")
        trainer = tc.model_copy(update={"max_epochs": freeze})
        return config.model_copy(
            update={"trainer_config": trainer, "tuner_config": tuner.model_copy(update={"plot_path": plot})}
        )
    return config.model_copy(update={"trainer_config": tc.model_copy(update={"max_epochs": tc.max_epochs - freeze})})


@dataclass(frozen=True)
class StageRunner:
    """What the experiment lends the phases (it sits above them): how it fits one stage with extra callbacks and an
    accumulation, how it keeps tuning traceless, and how it settles the batch when the batch size is not tuned."""

    fit: Callable[[ExperimentConfig, list[Any], int], tuple[dict[str, float], str | None]]
    untraced: Callable[[Any], AbstractContextManager[None]]
    settle_batch: Callable[[ExperimentConfig, Any], int]


@dataclass(frozen=True)
class PhasedRun:
    """The two phases' tuning outcomes (None where not tuned), the final metrics and the best checkpoint."""

    head_tuning: TuningOutcome | None
    tuning: TuningOutcome | None
    metrics: dict[str, float]
    best_checkpoint: str | None


def train_in_phases(
    config: ExperimentConfig,
    module: Any,
    datamodule: Any,
    runner: StageRunner,
    *,
    tune_batch_size: bool,
    tune_learning_rate: bool,
    retune: bool = False,
    confirm: bool = False,
) -> PhasedRun:
    """Batch size (whole model), then the head phase (LR, fit), then the whole-model phase (LR, fit)."""
    freeze = config.module_config.finetune.freeze_epochs
    head_config, whole_config = phase_config(config, "head"), phase_config(config, "whole")

    def _tune(config: ExperimentConfig, **kwargs: Any) -> TuningOutcome:
        with runner.untraced(module):
            return run_tuning(config, module, datamodule, retune=retune, **kwargs)

    if tune_batch_size:
        accumulation = _tune(config, batch_size=True, learning_rate=False).accumulate_grad_batches
    else:
        accumulation = runner.settle_batch(config, datamodule)
    frozen = module.set_backbone_frozen(True)
    say("Phase 1 of 2: the head alone for %d epoch(s), %d backbone tensors frozen.", freeze, frozen)
    head_tuning = None
    if tune_learning_rate:
        head_phase = LRPhase("learning_rate_head", HEAD_LABEL)
        head_tuning = _tune(head_config, batch_size=False, learning_rate=True, phase=head_phase)
        accumulation = head_tuning.accumulate_grad_batches
    carry = CarryHeadState()
    runner.fit(head_config, [carry], accumulation)
    module.set_backbone_frozen(False)
    epochs = whole_config.trainer_config.max_epochs
    say("Phase 2 of 2: the whole model for %d epoch(s); the backbone's optimizer state starts fresh.", epochs)
    tuning = None
    if tune_learning_rate:
        start = {
            "after": "head phase",
            "freeze_epochs": freeze,
            "head_learning_rate": float(module.hparams.learning_rate),
        }  # the head-trained weights this LR is found from
        whole_phase = LRPhase("learning_rate", WHOLE_LABEL, start)
        tuning = _tune(whole_config, batch_size=False, learning_rate=True, confirm=confirm, phase=whole_phase)
        accumulation = tuning.accumulate_grad_batches
    metrics, best = runner.fit(whole_config, [carry], accumulation)
    return PhasedRun(head_tuning, tuning, metrics, best)
