"""``BatchSizeFinder``: the largest batch size that fits, as a Lightning callback.

Same parameters and hooks as Lightning's ``BatchSizeFinder`` (of either package). The search policy, OOM handling and
memory clean-up are the batch-size engine's (:func:`traenslenzor.tuner.batch.runner.run_search`); this module
only says how one trial runs in a Lightning project: write the size to every holder of ``batch_arg_name``, rebuild
the dataloader from the datamodule's (or model's) hook, and run ``steps_per_trial`` steps of the stage.

What differs from Lightning (each a Lightning defect, each with a regression test):

- the first trial runs at ``init_val`` (Lightning's first trial uses the dataloader built before the change);
- the returned size was tested (Lightning returns a ``max_val`` cap or a binsearch margin it never ran);
- out of memory at batch size 1 is a clear error, and no checkpoint file is ever written;
- MPS/XPU/HIP out-of-memory errors are recognised (``is_oom_error``);
- it runs under DDP: each rank measures on its own (no collectives during trials), all adopt the smallest size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sized
from typing import TYPE_CHECKING, Any

import torch
from lightning_utilities.core.rank_zero import rank_zero_warn

from traenslenzor.tuner.batch.result import BatchSizeResult
from traenslenzor.tuner.batch.runner import DEFAULTS, BatchSearchSettings, BatchSizeNotFoundError, run_search
from traenslenzor.tuner.batch.search import SEARCH_POLICIES, BatchSizeMode
from traenslenzor.tuner.lightning.attributes import (
    AttrHolders,
    MissingAttributeError,
    TunerConfigurationError,
    batch_size_holders,
)
from traenslenzor.tuner.lightning.namespace import callback_class, default_package, namespace_of
from traenslenzor.tuner.lightning.search_callback import SearchCallback
from traenslenzor.tuner.lightning.steps import search_isolation, trial_steps
from traenslenzor.tuner.state import preserved_loader_generators, preserved_training_state

if TYPE_CHECKING:
    import lightning.pytorch as pl

log = logging.getLogger(__name__)

# The dataloader hook each trainer entry point reads.
LOADER_HOOKS = {
    "fit": "train_dataloader",
    "validate": "val_dataloader",
    "test": "test_dataloader",
    "predict": "predict_dataloader",
}
STAGE_NAMES = {"fit": "train", "validate": "validation", "test": "test", "predict": "predict"}


# Lightning's default margin, kept so that the adapter stays a drop-in (the core's is DEFAULTS.margin; see
# docs/batch_size.md for why it can be smaller there).
LIGHTNING_MARGIN = 0.05


class BatchSizeSearch(SearchCallback):
    """Finds the largest batch size that fits at the start of ``fit``/``validate``/``test``/``predict``.

    Args:
        mode: ``"power"`` (double until out of memory), ``"binsearch"`` (then bisect, then apply ``margin``), or
            one of the engine's other policies (``traenslenzor.tuner.batch.search.SEARCH_POLICIES``).
        steps_per_trial: steps run at each size.
        init_val: the first size tried.
        max_trials: at most this many trials.
        batch_arg_name: the attribute (on model, ``model.hparams``, datamodule, ``datamodule.hparams``) that the
            dataloader hook reads; the found size is written to every holder.
        margin: binsearch safety reduction (0 <= margin < 1).
        max_val: the largest size tried.
        max_memory: optional memory budget the trials are held to: bytes, or a fraction of the device's total.
        progress_bar: show a progress bar on rank 0.
        early_exit: end the trainer call once the search is done (what :class:`Tuner` sets).

    After the search :attr:`optimal_batch_size` holds the size and :attr:`result` the engine's
    :class:`~traenslenzor.tuner.BatchSizeResult` (every trial). ``BatchSizeFinder`` is this search on a Lightning
    package's ``Callback`` (:func:`.namespace.callback_class`).
    """

    callback_name = "BatchSizeFinder"
    # Lightning's "power" and "binsearch", and the engine's further policies ("auto", "throughput").
    SUPPORTED_MODES = tuple(SEARCH_POLICIES)

    def __init__(
        self,
        mode: BatchSizeMode = DEFAULTS.mode,
        steps_per_trial: int = DEFAULTS.steps_per_trial,
        init_val: int = DEFAULTS.init_val,
        max_trials: int = DEFAULTS.max_trials,
        batch_arg_name: str = "batch_size",
        margin: float = LIGHTNING_MARGIN,
        max_val: int = DEFAULTS.max_val,
        *,
        max_memory: int | float | None = DEFAULTS.max_memory,
        progress_bar: bool = True,
        early_exit: bool = False,
    ) -> None:
        super().__init__(early_exit=early_exit)
        mode = mode.lower() if isinstance(mode, str) else mode  # Lightning accepts "Power"
        if mode not in self.SUPPORTED_MODES:
            raise TunerConfigurationError(f"mode={mode!r}: `mode` should be either of {self.SUPPORTED_MODES}.")
        try:
            # The search's settings, validated once here and passed to the runner unchanged.
            self.settings = BatchSearchSettings(
                mode=mode,
                init_val=init_val,
                max_trials=max_trials,
                max_val=max_val,
                margin=margin,
                steps_per_trial=steps_per_trial,
                max_memory=max_memory,
            )
        except ValueError as exc:
            raise TunerConfigurationError(str(exc)) from None  # Lightning's error type, as for every other setting
        self._batch_arg_name = batch_arg_name
        self._progress_bar = progress_bar
        self.optimal_batch_size: int | None = init_val
        self.result: BatchSizeResult | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str | None = None) -> None:
        # Fail before any training: the attribute and a rebuildable dataloader must exist.
        stage_fn = _fn(trainer)
        make_loader = _loader_factory(trainer, pl_module, stage_fn)
        try:
            batch_size_holders(pl_module, trainer.datamodule, self._batch_arg_name, warn_duplicates=True)
        except MissingAttributeError:
            if stage_fn != "fit":
                _dataset_len(trainer, make_loader(), stage_fn)  # several evaluation loaders is the first thing to fix
            raise

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.scale_batch_size(trainer, pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or _fn(trainer) != "validate":
            return
        self.scale_batch_size(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.scale_batch_size(trainer, pl_module)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.scale_batch_size(trainer, pl_module)

    def scale_batch_size(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> int | None:
        """Run the search now, write the size to every holder, and return it (None under ``fast_dev_run``)."""
        with self.ending_the_tuner_call(trainer):
            if self.skipped_for_fast_dev_run(trainer, "batch size scaler"):
                self.optimal_batch_size = None
            else:
                self.optimal_batch_size = self._search_and_apply(trainer, pl_module)
                if self.early_exit:
                    # The Tuner ends this call now: the loaders are built only so that `trainer.*_dataloader(s)`
                    # show the found size. Building one starts its iterator, which draws a shuffle seed; the user's
                    # generator gets its state back (in callback mode that draw is the stage's own, and stays).
                    with preserved_loader_generators(_loader_factory(trainer, pl_module, _fn(trainer))()):
                        _rebuild_stage_loaders(trainer, reset_loop=False, name=self._batch_arg_name)
                else:
                    _rebuild_stage_loaders(trainer, reset_loop=True, name=self._batch_arg_name)
        return self.optimal_batch_size

    def _search_and_apply(self, trainer: pl.Trainer, module: pl.LightningModule) -> int:
        holders = batch_size_holders(module, trainer.datamodule, self._batch_arg_name)
        original = holders.values()
        failure: BatchSizeNotFoundError | None = None
        found = 0  # no size: a failed search
        try:
            try:
                self.result = self._search(trainer, module, _fn(trainer), holders)
                found = self.result.batch_size
            except BatchSizeNotFoundError as exc:
                failure = exc  # decided with the other ranks below, so that none waits for this one
            size = _smallest_over_ranks(trainer, found)
        except BaseException:
            holders.restore(original)  # a failed search (or an interrupt in the reduce) changes nothing
            raise
        if size < 1:
            holders.restore(original)
            raise failure or BatchSizeNotFoundError(
                "Another rank found no batch size that fits in its memory (its log says why); this rank keeps "
                f"{self._batch_arg_name}={original[0]}."
            )
        holders.write(size)
        log.info("Finished batch size finder, will continue with full run using batch size %d", size)
        return size

    def _search(
        self, trainer: pl.Trainer, module: pl.LightningModule, stage: str, holders: AttrHolders
    ) -> BatchSizeResult:
        """Run the engine's search; each trial writes its size, rebuilds the dataloader and runs the stage's steps."""
        make_loader = _loader_factory(trainer, module, stage)
        steps = self.settings.steps_per_trial

        def run_trial(batch_size: int) -> float | None:
            holders.write(batch_size)
            module.train(stage == "fit")  # every trial: the restore between trials puts the user's modes back
            loader = make_loader()
            with preserved_loader_generators(loader):  # a generator the hook shares across loaders stays untouched
                return trial_steps(trainer, stage, loader, steps)

        fit = stage == "fit"
        optimizers = trainer.optimizers if fit else []
        schedulers = [c.scheduler for c in trainer.lr_scheduler_configs] if fit else []
        with (
            preserved_training_state(module, optimizers, schedulers) as state,
            search_isolation(trainer, module),
            torch.enable_grad() if fit else torch.no_grad(),
        ):
            return run_search(
                run_trial,
                self.settings,
                dataset_len=_dataset_len(trainer, make_loader(), stage),
                device=trainer.strategy.root_device,
                between_trials=state.restore,  # every trial starts from the user's weights and optimizer state
                progress_bar=self._progress_bar and trainer.is_global_zero,
            )


# The callback on the unified package's Callback (the standalone package's where only that one is installed); the
# Tuner builds the one of its trainer's package. Either runs in a trainer of either package.
BatchSizeFinder = callback_class(BatchSizeSearch, default_package())


def _fn(trainer: pl.Trainer) -> str:
    """The running entry point: "fit", "validate", "test" or "predict"."""
    fn = trainer.state.fn
    return str(getattr(fn, "value", fn))


def _rebuild_stage_loaders(trainer: pl.Trainer, *, reset_loop: bool, name: str) -> None:
    """Let the running stage's loop build its dataloaders at the found size (as Lightning's finder does).

    ``fit`` at ``on_fit_start``: the loop has not built them yet, so ``setup_data()`` builds them now, from the
    hooks that read the new size (``trainer.train_dataloader`` then shows it, also after a Tuner call). The
    evaluation loops built theirs before the stage's start hook; ``setup_data()`` builds them again and, when the
    stage goes on (callback mode), ``reset()`` hands the new loader to the loop's fetcher before its first batch.
    Only public loop methods are used. A fit loader built before the search (another finder ran first, or the
    finder runs mid-fit) cannot be swapped: a warning says the size applies from the next call.
    """
    stage = _fn(trainer)
    if stage == "fit":
        if trainer.train_dataloader is not None:
            if reset_loop:
                rank_zero_warn(
                    f"The batch size finder set {name}, but this `trainer.fit` call has built its dataloader "
                    "already; the new size applies from the next call. Run the finder at `on_fit_start` (before "
                    "other finders) or via Tuner.scale_batch_size."
                )
            return
        trainer.fit_loop.setup_data()
        trainer.fit_loop.epoch_loop.val_loop.setup_data()
        return
    loop = getattr(trainer, f"{stage}_loop")
    loop.setup_data()
    if reset_loop:
        loop.reset()


def _loader_factory(trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> Callable[[], Any]:
    """A function that builds a fresh dataloader for ``stage`` from the datamodule's or the model's hook."""
    hook = LOADER_HOOKS[stage]
    datamodule = trainer.datamodule
    namespace = namespace_of(trainer, module)
    if datamodule is not None and namespace.is_overridden(hook, datamodule):
        return getattr(datamodule, hook)
    if namespace.is_overridden(hook, module):
        return getattr(module, hook)
    raise TunerConfigurationError(
        f"The batch size finder rebuilds the dataloader at each size and needs `{hook}()` on the datamodule or "
        "the LightningModule; dataloaders passed directly to the trainer cannot be rebuilt. Move the dataloader "
        "into a LightningDataModule (or the model) that reads the batch size attribute."
    )


def _dataset_len(trainer: pl.Trainer, loader: Any, stage: str) -> int | None:
    if isinstance(loader, list | tuple | Mapping | namespace_of(trainer).CombinedLoader):
        # "Batch size finder cannot be used with multiple ... dataloaders" is Lightning's wording, kept.
        raise TunerConfigurationError(
            f"Batch size finder cannot be used with multiple {STAGE_NAMES[stage]} dataloaders: `{LOADER_HOOKS[stage]}"
            f"()` returned a {type(loader).__name__}. Return one DataLoader while searching (the found size then "
            "applies to every loader that reads the attribute)."
        )
    if not isinstance(loader, torch.utils.data.DataLoader):
        raise TunerConfigurationError(
            f"The batch size finder needs one DataLoader from `{LOADER_HOOKS[stage]}()`, got {type(loader).__name__}."
        )
    dataset = loader.dataset
    return len(dataset) if isinstance(dataset, Sized) else None


def _smallest_over_ranks(trainer: pl.Trainer, size: int) -> int:
    # Each rank measured its own memory; the one with the least room decides for all.
    value = torch.tensor(size, device=trainer.strategy.root_device)
    return int(trainer.strategy.reduce(value, reduce_op="min"))
