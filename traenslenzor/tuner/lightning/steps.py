"""One training (or evaluation) step run by the tuner through a Lightning trainer's public strategy API.

The tuner does not run Lightning's fit loop for its searches. The loop brings epochs, ``max_epochs``/``max_steps``,
validation passes, loggers and loop progress counters, and Lightning's own finders have to fight all of them (a
search cut short by a short epoch, validation inside the search, a skipped epoch afterwards). Instead the tuner
runs each step itself, with the same pieces the loop uses: ``trainer.strategy.training_step`` (the DDP wrapper and
the precision plugin's autocast), ``trainer.strategy.backward`` (precision scaling, backward hooks) and
``trainer.strategy.optimizer_step`` (gradient clipping, AMP's scaler, ``on_before_optimizer_step``).

While a search runs, the trainer's callbacks are set aside (as Lightning's finders do) and ``self.log`` is a no-op,
so that no search step reaches a logger, a checkpoint callback or an epoch-level metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import torch

from traenslenzor.tuner.batching import concat_batches, cycle
from traenslenzor.tuner.lightning.attributes import TunerConfigurationError
from traenslenzor.tuner.lightning.namespace import namespace_of
from traenslenzor.tuner.lr.wall import PROBE_SEED
from traenslenzor.tuner.oom import free_memory, is_oom_error

if TYPE_CHECKING:
    import lightning.pytorch as pl

# Evaluation stages: the step method of the LightningModule and the precision plugin's context for it.
EVAL_STEPS = {
    "validate": ("validation_step", "val_step_context"),
    "test": ("test_step", "test_step_context"),
    "predict": ("predict_step", "predict_step_context"),
}


@contextmanager
def search_isolation(trainer: pl.Trainer, module: pl.LightningModule) -> Iterator[None]:
    """Set the trainer's callbacks aside and make ``module.log``/``log_dict`` no-ops for the block."""
    callbacks = trainer.callbacks
    own = {name: module.__dict__[name] for name in ("log", "log_dict") if name in module.__dict__}
    trainer.callbacks = []
    module.log = _no_log  # instance attributes shadow the methods; removed again below
    module.log_dict = _no_log
    try:
        yield
    finally:
        trainer.callbacks = callbacks
        for name in ("log", "log_dict"):
            if name in own:
                module.__dict__[name] = own[name]
            else:
                module.__dict__.pop(name, None)


def _no_log(*args: Any, **kwargs: Any) -> None:
    """Stands in for ``LightningModule.log`` during a search: search steps must not reach loggers or metrics."""


def loss_of(output: Any) -> torch.Tensor | None:
    """The loss in a ``training_step`` output (a tensor, a mapping with ``"loss"``, or None to skip the batch)."""
    if output is None or isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) and isinstance(output.get("loss"), torch.Tensor):
        return output["loss"]
    raise TunerConfigurationError(
        f"training_step returned a {type(output).__name__}; the tuner needs the loss: return a tensor or a dict "
        "with a 'loss' tensor."
    )


def cycle_batches(loader: Any) -> Iterator[Any]:
    """The batches of ``loader`` again and again (:func:`~traenslenzor.tuner.batching.cycle`), raising the
    adapter's configuration error for a loader that yields nothing."""
    return cycle(loader, TunerConfigurationError)


def fit_dataloader(trainer: pl.Trainer) -> Any:
    """The training dataloader(s) Lightning itself builds for this fit (sampler injection and all)."""
    trainer.fit_loop.setup_data()  # a no-op when the loop has built them already
    loaders = trainer.train_dataloader
    if loaders is None:
        raise TunerConfigurationError(
            "lr_find found no training data: give train_dataloaders or a datamodule, or define "
            "train_dataloader() and training_step() on the model (and keep limit_train_batches > 0)."
        )
    if isinstance(loaders, torch.utils.data.DataLoader):
        return loaders
    # Several train loaders: what training_step gets in fit (the trainer's own package's CombinedLoader).
    return namespace_of(trainer).CombinedLoader(loaders, "max_size_cycle")


def lr_search_step(
    trainer: pl.Trainer, optimizer: torch.optim.Optimizer, batches: Iterator[Any], batch_idx: int
) -> float | None:
    """One optimizer step of real training (``accumulate_grad_batches`` micro-batches); its loss, mean over ranks.

    Returns None when ``training_step`` returned None (Lightning skips such a batch).
    """
    strategy = trainer.strategy
    module = trainer.lightning_module
    accumulate = max(1, int(trainer.accumulate_grad_batches))
    micro = [strategy.batch_to_device(next(batches)) for _ in range(accumulate)]
    if not module.automatic_optimization:
        # The module steps its optimizers itself (manual optimization); the tuner only sets the LR and reads the loss.
        losses = [loss_of(strategy.training_step(b, batch_idx + i)) for i, b in enumerate(micro)]
        return _mean_over_ranks(trainer, losses)
    losses: list[torch.Tensor | None] = []

    def closure() -> torch.Tensor | None:
        losses.clear()
        optimizer.zero_grad()
        for i, batch in enumerate(micro):
            loss = loss_of(strategy.training_step(batch, batch_idx + i))
            if loss is None:
                losses.append(None)
                continue
            strategy.backward(loss / accumulate, optimizer)
            losses.append(loss.detach())
        return losses[-1]  # what Lightning's closure returns: the last micro-batch's loss (None if it skipped)

    strategy.optimizer_step(optimizer, closure)
    return _mean_over_ranks(trainer, losses)


def probe_step(trainer: pl.Trainer, probe: list[Any]) -> float | None:
    """The mean ``training_step`` loss on the set-aside ``probe`` batches, forward only, mean over ranks.

    No gradient, and the same RNG draws every time (dropout masks), so that the curve changes only with the weights
    (``traenslenzor.tuner.lr.wall``). None when ``training_step`` returned None for one of them.
    """
    strategy = trainer.strategy
    device = strategy.root_device
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(PROBE_SEED)
        losses = [loss_of(strategy.training_step(strategy.batch_to_device(b), i)) for i, b in enumerate(probe)]
    return _mean_over_ranks(trainer, losses)


class Probe:
    """The set-aside probe batches, measured by :func:`probe_step` in one forward pass where they join.

    Joined, that pass holds ``len(batches)`` times a training batch: right after ``scale_batch_size`` found the
    largest batch that fits, it can run out of memory. Then the batches are measured one by one from there on.
    """

    def __init__(self, trainer: pl.Trainer, batches: list[Any]) -> None:
        self._trainer = trainer
        self._apart = batches
        joined = concat_batches(batches) if len(batches) > 1 else None
        self._batches = [joined] if joined is not None else batches

    def loss(self) -> float | None:
        """The mean probe loss now (see :func:`probe_step`)."""
        try:
            return probe_step(self._trainer, self._batches)
        except Exception as exc:
            if self._batches is self._apart or not is_oom_error(exc):
                raise
        self._batches = self._apart  # the joined batch and the failed pass are dropped before memory is freed
        free_memory()
        return probe_step(self._trainer, self._batches)


def _mean_over_ranks(trainer: pl.Trainer, losses: list[torch.Tensor | None]) -> float | None:
    """The step's loss averaged over ranks; None on every rank if any rank's ``training_step`` returned None.

    Every rank must record the same curve so that all stop at the same step and suggest the same LR; the reduce
    runs on every rank whatever its own outcome, so that no rank waits for another in the collective.
    """
    valid = bool(losses) and all(loss is not None for loss in losses)
    if trainer.world_size == 1:
        # No other rank to agree with: one device-to-host sync per step instead of a round trip and three syncs.
        return float(torch.stack([v.detach().float() for v in losses]).mean()) if valid else None
    local = torch.stack([v.detach().float() for v in losses]).mean().cpu() if valid else torch.tensor(0.0)
    packed = torch.stack([local, torch.tensor(float(valid))]).to(trainer.strategy.root_device)
    total = trainer.strategy.reduce(packed, reduce_op="sum")
    if float(total[1]) < trainer.world_size:
        return None
    return float(total[0]) / trainer.world_size


def _no_ddp_sync(trainer: pl.Trainer) -> Any:
    """Gradients stay on this rank during batch-size trials: each rank measures its own memory, no collectives."""
    wrapped = trainer.strategy.model
    no_sync = getattr(wrapped, "no_sync", None)
    return no_sync() if callable(no_sync) else nullcontext()


def trial_steps(trainer: pl.Trainer, stage: str, loader: Any, steps: int) -> float | None:
    """Run ``steps`` steps of ``stage`` on batches of ``loader``; seconds of all steps after the first (warm-up).

    Steps run on the LightningModule itself (not through the DDP wrapper) so that a rank that runs out of memory
    never leaves the others waiting in a collective.
    """
    module = trainer.lightning_module
    batches = cycle_batches(loader)
    run = _fit_trial_step if stage == "fit" else _eval_trial_step(stage)
    started = None
    for step in range(steps):
        if step == 1:
            started = time.perf_counter()
        run(trainer, module, trainer.strategy.batch_to_device(next(batches)), step)
    return None if started is None else time.perf_counter() - started


def _fit_trial_step(trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
    precision = trainer.precision_plugin
    if not module.automatic_optimization:
        with _no_ddp_sync(trainer), precision.train_step_context():
            module.training_step(batch, batch_idx)
        return
    optimizer = trainer.optimizers[0]

    def closure() -> torch.Tensor | None:
        optimizer.zero_grad()
        with precision.train_step_context():
            loss = loss_of(module.training_step(batch, batch_idx))
        if loss is not None:
            precision.backward(precision.pre_backward(loss, module), module, optimizer)
        return loss

    with _no_ddp_sync(trainer):
        precision.optimizer_step(optimizer, model=module, closure=closure)


def _eval_trial_step(stage: str) -> Callable[[pl.Trainer, pl.LightningModule, Any, int], None]:
    step_name, context_name = EVAL_STEPS[stage]

    def run(trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        with torch.no_grad(), getattr(trainer.precision_plugin, context_name)():
            getattr(module, step_name)(batch, batch_idx)

    return run
