"""``LearningRateFinder``: the LR range test (Smith 2015/2017) as a Lightning callback.

Same parameters and hooks as Lightning's ``LearningRateFinder`` (of either package); the sweep, smoothing and stop rules
are :class:`~traenslenzor.tuner.lr.sweep.RangeTest`'s, the steps run through the trainer's strategy
(:mod:`steps`), and the model, optimizer, schedulers and RNGs are restored from an in-memory snapshot.

What differs from Lightning (each a Lightning defect, each with a regression test):

- the search runs ``num_training`` steps whatever ``max_epochs``, ``max_steps`` or the epoch length (#16561), runs no
  validation pass, and leaves the fit loop untouched, so no epoch is skipped afterwards (#15603);
- it works when started after training began (#4846: Lightning stops after one point there);
- a NaN/inf loss stops it;
- at fit start, the optimizer and LR schedulers are built again from the new LR, so a scheduler made from the LR
  attribute (``OneCycleLR(max_lr=self.lr)``) follows it instead of resetting it at its first step;
- under DDP every rank records the loss averaged over ranks, so all stop together and adopt the same LR;
- no checkpoint file is written.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from lightning_utilities.core.rank_zero import rank_zero_warn
from tqdm.auto import tqdm

from traenslenzor.tuner.lightning.attributes import TunerConfigurationError, lr_holders
from traenslenzor.tuner.lightning.namespace import callback_class, default_package
from traenslenzor.tuner.lightning.search_callback import SearchCallback
from traenslenzor.tuner.lightning.steps import (
    Probe,
    cycle_batches,
    fit_dataloader,
    lr_search_step,
    search_isolation,
)
from traenslenzor.tuner.lr.adaptive import AdaptiveRange, AdaptiveSweep
from traenslenzor.tuner.lr.param_groups import group_lr_ratios, set_group_lrs
from traenslenzor.tuner.lr.result import LRFinderResult
from traenslenzor.tuner.lr.settings import DEFAULT_SWEEP, StopReason, SweepSettings
from traenslenzor.tuner.lr.sweep import RangeTest
from traenslenzor.tuner.lr.wall import PROBE_BATCHES, probe_due
from traenslenzor.tuner.state import preserved_loader_generators, preserved_training_state

if TYPE_CHECKING:
    import lightning.pytorch as pl

log = logging.getLogger(__name__)

# A training_step may return None to skip a batch; this many skips per wanted point means it never returns a loss.
MAX_SKIPS_PER_POINT = 10


class LearningRateSearch(SearchCallback):
    """Runs the LR range test at ``on_fit_start`` (or wherever :meth:`lr_find` is called) and applies the result.

    Args:
        min_lr: first LR of the sweep.
        max_lr: last LR of the sweep.
        num_training_steps: optimizer steps (points) of the sweep.
        mode: ``"exponential"`` or ``"linear"``.
        early_stop_threshold: stop once the smoothed loss exceeds this multiple of the best; None disables it.
        update_attr: write the suggested LR to the LR attribute (every holder) and the live optimizer.
        attr_name: the LR attribute's name; by default the first of ``lr``/``learning_rate`` found.
        progress_bar: show a tqdm bar on rank 0.
        adaptive_range: widen the sweep where the curve shows no edge (``AdaptiveRange``); None keeps it fixed.
        early_exit: end the trainer call once the search is done (what :class:`Tuner` sets).
        probe_batches: batches set aside whose loss ``training_step`` measures after every step, forward only (the
            curve the default suggestion reads, ``traenslenzor.tuner.lr.wall``); 0 measures none.

    After the search, :attr:`optimal_lr` holds the :class:`~traenslenzor.tuner.LRFinderResult` (Lightning's name).
    ``LearningRateFinder`` is this search on a Lightning package's ``Callback`` (:func:`.namespace.callback_class`).
    """

    callback_name = "LearningRateFinder"
    SUPPORTED_MODES = ("linear", "exponential")

    def __init__(
        self,
        min_lr: float = DEFAULT_SWEEP.min_lr,
        max_lr: float = DEFAULT_SWEEP.max_lr,
        num_training_steps: int = DEFAULT_SWEEP.num_training,
        mode: str = DEFAULT_SWEEP.mode,
        early_stop_threshold: float | None = DEFAULT_SWEEP.early_stop_threshold,
        update_attr: bool = True,
        attr_name: str = "",
        *,
        progress_bar: bool = True,
        adaptive_range: AdaptiveRange | None = None,
        early_exit: bool = False,
        probe_batches: int = PROBE_BATCHES,
    ) -> None:
        super().__init__(early_exit=early_exit)
        mode = mode.lower() if isinstance(mode, str) else mode
        if mode not in self.SUPPORTED_MODES:
            raise TunerConfigurationError(f"mode={mode!r}: `mode` should be either of {self.SUPPORTED_MODES}.")
        try:  # validates the sweep now, before any trainer work
            self._settings = SweepSettings(min_lr, max_lr, num_training_steps, mode, early_stop_threshold)
        except ValueError as exc:
            raise TunerConfigurationError(str(exc)) from None  # Lightning's error type, as for every other setting
        if adaptive_range is not None and not isinstance(adaptive_range, AdaptiveRange):
            raise TunerConfigurationError(
                f"adaptive_range must be an AdaptiveRange or None, got {type(adaptive_range).__name__}."
            )
        if not isinstance(probe_batches, int) or isinstance(probe_batches, bool) or probe_batches < 0:
            raise TunerConfigurationError(f"probe_batches={probe_batches!r}: must be an integer >= 0.")
        self._probe_batches = probe_batches
        self._adaptive = adaptive_range
        self._update_attr = update_attr
        self._attr_name = attr_name
        self._progress_bar = progress_bar
        self.optimal_lr: LRFinderResult | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.lr_find(trainer, pl_module)

    def lr_find(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> LRFinderResult | None:
        """Run the search now (from any hook during ``fit``), apply the suggestion if asked, and return the result."""
        with self.ending_the_tuner_call(trainer):
            skipped = self.skipped_for_fast_dev_run(trainer, "learning rate finder")
            self.optimal_lr = None if skipped else self._search_and_apply(trainer, pl_module)
        return self.optimal_lr

    def _search_and_apply(self, trainer: pl.Trainer, module: pl.LightningModule) -> LRFinderResult:
        holders = lr_holders(module, trainer.datamodule, self._attr_name) if self._update_attr else None
        optimizer = _single_optimizer(trainer)
        start_step = trainer.global_step
        schedulers = [config.scheduler for config in trainer.lr_scheduler_configs]
        sweep = AdaptiveSweep(self._settings, self._adaptive)
        bar = self._progress_bar and trainer.is_global_zero
        with (
            preserved_training_state(module, trainer.optimizers, schedulers) as state,
            search_isolation(trainer, module),
        ):
            module.train()
            with torch.enable_grad():
                test = sweep.run(
                    lambda test: _drive(trainer, optimizer, test, bar, self._probe_batches), restore=state.restore
                )
        metadata: dict[str, Any] = {
            "optimizer": type(optimizer).__name__,
            "start_global_step": start_step,
            "probe_batches": self._probe_batches,
            "probe_forward_passes": self._probe_batches * sum(probe_due(i) for i in range(len(test.probe_losses))),
        }
        result = test.result(source="lightning", **metadata, **sweep.metadata(test))
        if test.stop_reason != StopReason.COMPLETED:
            log.info(
                "LR finder stopped after %d of %d steps: %s.", len(result.lrs), test.num_training, test.stop_reason
            )
        if holders is not None:
            # Broadcast: the curves agree across ranks already; this makes the float itself identical too.
            lr = trainer.strategy.broadcast(result.suggestion())
            if lr is not None:
                holders.write(lr)
                set_group_lrs(optimizer, lr, group_lr_ratios(optimizer))
                log.info("Learning rate set to %s", lr)
                if trainer.lr_scheduler_configs and not self.early_exit:
                    _rebuild_optimizers(trainer, start_step)
        return result


# The callback on the unified package's Callback (the standalone package's where only that one is installed); the
# Tuner builds the one of its trainer's package. Either runs in a trainer of either package.
LearningRateFinder = callback_class(LearningRateSearch, default_package())


def _rebuild_optimizers(trainer: pl.Trainer, start_step: int) -> None:
    """Build the optimizer and LR schedulers again from the new LR attribute, before the first training step.

    A scheduler made in ``configure_optimizers`` from the old attribute (``OneCycleLR(max_lr=self.lr)``) sets the
    LR itself at its first step, so writing the new LR into the optimizer alone is undone at once (as with
    Lightning's callback). Before any step the optimizer holds no state, so building both again loses nothing.
    Later in training (or under DeepSpeed, whose engine owns the optimizer) only a warning is possible.
    """
    if start_step > 0 or "deepspeed" in type(trainer.strategy).__name__.lower():
        rank_zero_warn(
            "The LR finder wrote the new learning rate into the model and the optimizer, but the LR schedulers were "
            "built from the old one and keep following it; they can only be rebuilt before the first training step "
            "(run the finder from on_fit_start, or use Tuner.lr_find before fit)."
        )
        return
    trainer.strategy.setup_optimizers(trainer)  # public Strategy API: calls configure_optimizers again
    log.info("Rebuilt the optimizer and LR schedulers from the new learning rate.")


def _single_optimizer(trainer: pl.Trainer) -> torch.optim.Optimizer:
    optimizers = trainer.optimizers
    if len(optimizers) != 1:
        raise TunerConfigurationError(
            f"`model.configure_optimizers()` returned {len(optimizers)} optimizers, but the learning rate finder "
            "only works with single optimizer: return one optimizer (with parameter groups for parts that need "
            "other LRs), or call the finder on a module that has one."
        )
    return optimizers[0]


def _drive(
    trainer: pl.Trainer, optimizer: torch.optim.Optimizer, test: RangeTest, bar: bool, probe_batches: int
) -> None:
    """Drive ``test`` to its end: set the LR, take one real training step, record the loss (and the loss on the
    first ``probe_batches`` batches, set aside, measured after the step).

    A sweep the :class:`AdaptiveSweep` continues past ``max_lr`` goes on here from the current state and data
    position, as in ``find_lr``.
    """
    ratios = group_lr_ratios(optimizer)
    loader = fit_dataloader(trainer)
    batches = cycle_batches(loader)
    batch_idx = skips = 0
    progress: Any = tqdm(total=test.num_training, desc="Finding best initial lr", disable=not bar, leave=False)
    with progress, preserved_loader_generators(loader):
        # A manually optimized module steps its optimizers inside training_step: no forward-only probe through it.
        automatic = trainer.lightning_module.automatic_optimization
        probe = Probe(trainer, [next(batches) for _ in range(probe_batches)]) if automatic and probe_batches else None
        while not test.done:
            lr = test.lr_at(len(test.lrs))
            set_group_lrs(optimizer, lr, ratios)
            loss = lr_search_step(trainer, optimizer, batches, batch_idx)
            batch_idx += max(1, int(trainer.accumulate_grad_batches))
            if loss is None:
                skips += 1
                if skips > MAX_SKIPS_PER_POINT * test.num_training:
                    raise TunerConfigurationError(
                        "training_step returned None for every batch; the LR finder needs the loss returned."
                    )
                continue
            due = probe is not None and probe_due(len(test.lrs))
            test.record(lr, loss, probe.loss() if due else None)
            progress.total = test.num_training  # an extension lengthens the sweep
            progress.update()
