"""The batch that training sees, and the LR that goes with it: pure arithmetic, no model.

Under data parallelism ``batch_size`` is per process; one optimizer step averages the gradients of
``per-process x world size x accumulation`` samples, the *global batch*. The LR is found for, and applied to, that
global batch. Two rules follow:

- ``[datamodule_config] effective_batch_size`` asks for a global batch: when the per-process batch that fits is
  smaller, ``accumulate_grad_batches = ceil(effective / (found x world))`` (gradient accumulation instead of a
  batch that does not fit, done for the user), and the per-process batch is evened out so that the global batch
  comes as close to the request as that accumulation allows;
- an LR found at one global batch, used at another, is rescaled: linear for SGD-family optimizers, square root for
  Adam-family (``traenslenzor.tuner.rescale_lr``), and for AdamW the weight decay keeps ``lr x weight_decay``
  (``rescale_weight_decay``).

Where memory does not bound the batch-size search (the CPU without ``max_memory``), the search would grow the batch
to the whole training set: one optimizer step per epoch. :func:`search_bound` then caps it so that an epoch keeps
``[tuner_config] min_steps_per_epoch`` optimizer steps (:func:`steps_cap`); the tuner's ``max_val`` carries the cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from traenslenzor.tuner import rescale_lr, rescale_weight_decay, rule_for_optimizer


@dataclass(frozen=True)
class BatchPlan:
    """Per-process batch, processes and accumulation; their product is the global batch."""

    per_process: int
    world_size: int
    accumulation: int

    @property
    def global_batch(self) -> int:
        return self.per_process * self.world_size * self.accumulation

    def describe(self) -> str:
        return (
            f"{self.per_process} per process x {self.world_size} process{'es' if self.world_size != 1 else ''} "
            f"x {self.accumulation} accumulation = global batch {self.global_batch}"
        )


def plan_batch(per_process: int, world_size: int, accumulation: int, effective: int | None) -> BatchPlan:
    """The plan for a per-process batch that fits; ``effective`` (a global batch) decides the accumulation.

    >>> plan_batch(64, 1, 1, effective=256)
    BatchPlan(per_process=64, world_size=1, accumulation=4)
    >>> plan_batch(48, 1, 1, effective=128)  # ceil(128 / 48) = 3 steps of ceil(128 / 3) = 43
    BatchPlan(per_process=43, world_size=1, accumulation=3)
    >>> plan_batch(64, 2, 1, effective=64)  # 64 fits, 32 per process is enough
    BatchPlan(per_process=32, world_size=2, accumulation=1)
    """
    if effective is None:
        return BatchPlan(per_process, world_size, accumulation)
    accumulation = math.ceil(effective / (per_process * world_size))
    evened = math.ceil(effective / (accumulation * world_size))
    return BatchPlan(min(per_process, evened), world_size, accumulation)


@dataclass(frozen=True)
class Rescaled:
    """An LR carried from one global batch to another, and the weight decay that goes with it."""

    learning_rate: float
    weight_decay: float
    rule: str


def rescale_for_batch(
    learning_rate: float, weight_decay: float, *, from_batch: int, to_batch: int, optimizer: str
) -> Rescaled:
    """``learning_rate`` found at global batch ``from_batch`` carried to ``to_batch`` by the optimizer's rule.

    AdamW's decoupled weight decay is moved so that ``lr x weight_decay`` stays (Wang & Aitchison 2024); any
    other optimizer keeps its weight decay.

    >>> rescale_for_batch(1e-3, 0.01, from_batch=64, to_batch=256, optimizer="adamw")
    Rescaled(learning_rate=0.002, weight_decay=0.005, rule='sqrt')
    """
    rule = rule_for_optimizer(optimizer)
    new_lr = rescale_lr(learning_rate, from_batch=from_batch, to_batch=to_batch, rule=rule)
    if optimizer.lower() == "adamw":
        weight_decay = rescale_weight_decay(weight_decay, old_lr=learning_rate, new_lr=new_lr)
    return Rescaled(new_lr, weight_decay, rule)


def steps_cap(train_size: int, min_steps_per_epoch: int, world_size: int = 1, accumulation: int = 1) -> int:
    """The largest per-process batch whose epoch over ``train_size`` samples keeps ``min_steps_per_epoch`` optimizer
    steps (each step takes ``batch x world_size x accumulation`` samples); at least 1.

    >>> steps_cap(640, 50)  # 640 / 50 = 12.8
    12
    >>> steps_cap(3200, 50, world_size=2)  # 32 per process x 2 processes = 64 a step, 50 steps
    32
    """
    return max(1, train_size // (min_steps_per_epoch * world_size * accumulation))


@dataclass(frozen=True)
class SearchBound:
    """The largest batch the batch-size search may try, and the log lines that say why (before the search)."""

    max_val: int
    notes: tuple[str, ...] = ()


def search_bound(
    max_val: int, min_steps_per_epoch: int, train_size: int, world_size: int = 1, accumulation: int = 1
) -> SearchBound:
    """The bound of a search that memory does not limit: ``max_val``, lowered to :func:`steps_cap` when that is
    smaller; the notes name the cap and how to lift it."""
    notes = [
        "Batch-size search on the CPU without a memory budget (tuner_config.max_memory): memory does not bound the "
        "batch here, and the search would grow it towards the whole training set (one optimizer step per epoch)."
    ]
    cap = steps_cap(train_size, min_steps_per_epoch, world_size, accumulation)
    steps = f"{min_steps_per_epoch} optimizer step{'s' if min_steps_per_epoch != 1 else ''}"
    over = f"{train_size} training samples" + (
        f" ({world_size} processes x {accumulation} accumulation)" if world_size * accumulation > 1 else ""
    )
    if cap >= max_val:
        notes.append(f"The search stops at max_val={max_val}, which keeps at least {steps} per epoch over {over}.")
        return SearchBound(max_val, tuple(notes))
    notes.append(
        f"Capping the batch-size search at {cap}: at least {steps} per epoch over {over} "
        f"(tuner_config.min_steps_per_epoch = {min_steps_per_epoch}). To lift the cap, set "
        "tuner_config.min_steps_per_epoch = 1, or hold the search to memory with tuner_config.max_memory."
    )
    return SearchBound(cap, tuple(notes))
