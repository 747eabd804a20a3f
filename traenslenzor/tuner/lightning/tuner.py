"""Drop-in replacement for Lightning's ``Tuner``: ``Tuner(trainer).lr_find(...)`` and
``Tuner(trainer).scale_batch_size(...)`` with Lightning 2.6's signatures, plus the two callbacks.

Switching is a one-line import change, for a trainer of either Lightning package::

    from traenslenzor.tuner import Tuner        # was: from lightning.pytorch.tuner import Tuner
                                                #  or: from pytorch_lightning.tuner import Tuner

Each Tuner call attaches the matching callback to the trainer, runs ``trainer.fit`` (or ``validate``/``test``/
``predict``) only as far as ``on_fit_start`` (or the stage's start), where the callback searches and then ends the
call, and detaches it again. Argument errors and a missing LR/batch-size attribute are raised before that. The
callback is built on the ``Callback`` class of the trainer's own package (``lightning.pytorch`` or
``pytorch_lightning``, :mod:`.namespace`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from lightning_utilities.core.rank_zero import rank_zero_warn

from traenslenzor.tuner.batch.result import BatchSizeResult
from traenslenzor.tuner.batch.runner import DEFAULTS
from traenslenzor.tuner.batch.search import BatchSizeMode
from traenslenzor.tuner.lightning.attributes import (
    MissingAttributeError,
    TunerConfigurationError,
    batch_size_holders,
    lr_holders,
)
from traenslenzor.tuner.lightning.batch_size_finder import LIGHTNING_MARGIN, BatchSizeFinder, BatchSizeSearch
from traenslenzor.tuner.lightning.learning_rate_finder import LearningRateFinder, LearningRateSearch
from traenslenzor.tuner.lightning.namespace import LightningNamespace, callback_class, namespace_of
from traenslenzor.tuner.lr.adaptive import AdaptiveRange
from traenslenzor.tuner.lr.result import LRFinderResult
from traenslenzor.tuner.lr.settings import DEFAULT_SWEEP
from traenslenzor.tuner.lr.wall import PROBE_BATCHES

if TYPE_CHECKING:
    import lightning.pytorch as pl

__all__ = [
    "BatchSizeFinder",
    "FinderCallbacks",
    "LearningRateFinder",
    "MissingAttributeError",
    "Tuner",
    "TunerConfigurationError",
    "callbacks_for",
]

METHODS = ("fit", "validate", "test", "predict")


class FinderCallbacks(NamedTuple):
    """The two finder callback classes of one Lightning package (:func:`callbacks_for`)."""

    LearningRateFinder: type
    BatchSizeFinder: type


def callbacks_for(trainer_or_package: Any) -> FinderCallbacks:
    """``LearningRateFinder`` and ``BatchSizeFinder`` on the ``Callback`` class of one Lightning package: that of a
    trainer (or module), or the package named ``"lightning.pytorch"`` or ``"pytorch_lightning"``.

    ``traenslenzor.tuner.LearningRateFinder``/``BatchSizeFinder`` are the unified package's and run in a trainer of
    either package; these are for code that needs the callback to be its package's ``Callback`` too
    (``pytorch_lightning.Trainer(callbacks=finder)`` without a list, ``isinstance`` checks)::

        LearningRateFinder, BatchSizeFinder = callbacks_for("pytorch_lightning")
    """
    named = isinstance(trainer_or_package, str)
    package = trainer_or_package if named else namespace_of(trainer_or_package).package
    return FinderCallbacks(callback_class(LearningRateSearch, package), callback_class(BatchSizeSearch, package))


class Tuner:
    """Tunes the learning rate and batch size of a Lightning ``Trainer``'s model before training.

    Args:
        trainer: the ``lightning.pytorch.Trainer`` or ``pytorch_lightning.Trainer`` that will train the model (its
            accelerator, strategy and precision are used for the search; its package's callbacks run it).
    """

    def __init__(self, trainer: pl.Trainer) -> None:
        self._trainer = trainer
        self._namespace = namespace_of(trainer)
        # The last batch-size search's full record (every trial: size, fits, peak memory, samples/s); Lightning's
        # API returns only the size, so the record is kept here for whoever wants to log or plot it.
        self.batch_size_result: BatchSizeResult | None = None

    def scale_batch_size(
        self,
        model: pl.LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        dataloaders: Any = None,
        datamodule: pl.LightningDataModule | None = None,
        method: Literal["fit", "validate", "test", "predict"] = "fit",
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
    ) -> int | None:
        """Find the largest batch size that fits, write it to every holder of ``batch_arg_name``, and return it.

        Arguments as Lightning's ``Tuner.scale_batch_size``; ``max_memory`` (bytes, or a fraction of the device's
        total memory) additionally holds trials to a memory budget. The search's trials are kept in
        :attr:`batch_size_result`. Returns None (with a warning) under ``fast_dev_run``. Runs under DDP: every rank
        measures, all adopt the smallest size.
        """
        _check_method(method, train_dataloaders, val_dataloaders, dataloaders)
        _check_no_finder(self._trainer, BatchSizeSearch, self._namespace, "BatchSizeFinder")
        # The finder builds (and validates) the search's one settings object; the search reads it unchanged.
        finder = callbacks_for(self._trainer).BatchSizeFinder(
            mode=mode,
            steps_per_trial=steps_per_trial,
            init_val=init_val,
            max_trials=max_trials,
            batch_arg_name=batch_arg_name,
            margin=margin,
            max_val=max_val,
            max_memory=max_memory,
            progress_bar=progress_bar,
            early_exit=True,  # this trainer call exists only to search
        )
        if self._is_dataloader_arg(train_dataloaders) or self._is_dataloader_arg(dataloaders):
            raise TunerConfigurationError(
                "Batch size finder cannot be used with dataloaders passed directly: it rebuilds the dataloader at "
                "each size. Pass a datamodule, or define the *_dataloader hook on the model."
            )
        if method == "fit":
            # Evaluation stages check in BatchSizeFinder.setup, where a hook returning several loaders is named
            # first (as Lightning does); both before any step.
            batch_size_holders(model, self._datamodule_of(train_dataloaders, datamodule), batch_arg_name)
        if self._trainer.fast_dev_run:
            rank_zero_warn("Skipping batch size scaler since `fast_dev_run` is enabled.")
            return None
        with _attached(self._trainer, finder):
            _run(self._trainer, method, model, train_dataloaders, val_dataloaders, dataloaders, datamodule)
        self.batch_size_result = finder.result
        return finder.optimal_batch_size

    def lr_find(
        self,
        model: pl.LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        dataloaders: Any = None,
        datamodule: pl.LightningDataModule | None = None,
        method: Literal["fit", "validate", "test", "predict"] = "fit",
        min_lr: float = DEFAULT_SWEEP.min_lr,
        max_lr: float = DEFAULT_SWEEP.max_lr,
        num_training: int = DEFAULT_SWEEP.num_training,
        mode: str = DEFAULT_SWEEP.mode,
        early_stop_threshold: float | None = DEFAULT_SWEEP.early_stop_threshold,
        update_attr: bool = True,
        attr_name: str = "",
        *,
        progress_bar: bool = True,
        adaptive_range: AdaptiveRange | None = None,
        probe_batches: int = PROBE_BATCHES,
    ) -> LRFinderResult | None:
        """Run the LR range test and return its :class:`LRFinderResult` (``.results``, ``.suggestion()``,
        ``.plot()``); with ``update_attr`` the suggestion is written to every LR holder and the live optimizer.

        Arguments as Lightning's ``Tuner.lr_find``. Returns None (with a warning) under ``fast_dev_run``.
        The range is Lightning's fixed ``[min_lr, max_lr]`` unless ``adaptive_range`` is given: then a sweep whose
        loss never turns up continues past ``max_lr``, and one that blows up at once restarts below ``min_lr``, as
        ``find_lr`` does by default (docs/lightning.md says why the default differs). ``probe_batches`` batches are
        set aside and their loss measured after every step, forward only: the curve the default suggestion reads
        (0 measures none; the suggestion then falls back to the ``stable`` rule).
        """
        _check_method(method, train_dataloaders, val_dataloaders, dataloaders)
        if method != "fit":
            raise TunerConfigurationError(
                f"method={method!r}: method='fit' is the only valid configuration to run lr finder."
            )
        _check_no_finder(self._trainer, LearningRateSearch, self._namespace, "LearningRateFinder")
        finder = callbacks_for(self._trainer).LearningRateFinder(
            min_lr=min_lr,
            max_lr=max_lr,
            num_training_steps=num_training,
            mode=mode,
            early_stop_threshold=early_stop_threshold,
            update_attr=update_attr,
            attr_name=attr_name,
            progress_bar=progress_bar,
            adaptive_range=adaptive_range,
            early_exit=True,  # this trainer call exists only to search
            probe_batches=probe_batches,
        )
        if update_attr:
            lr_holders(model, self._datamodule_of(train_dataloaders, datamodule), attr_name)
        if self._trainer.fast_dev_run:
            rank_zero_warn("Skipping learning rate finder since `fast_dev_run` is enabled.")
            return None
        with _attached(self._trainer, finder):
            self._trainer.fit(model, train_dataloaders, val_dataloaders, datamodule)
        return finder.optimal_lr

    def _datamodule_of(self, train_dataloaders: Any, datamodule: Any) -> Any:
        # Lightning accepts a datamodule in the train_dataloaders slot.
        return train_dataloaders if isinstance(train_dataloaders, self._namespace.LightningDataModule) else datamodule

    def _is_dataloader_arg(self, value: Any) -> bool:
        return value is not None and not isinstance(value, self._namespace.LightningDataModule)


def _check_method(method: str, train_dataloaders: Any, val_dataloaders: Any, dataloaders: Any) -> None:
    if method not in METHODS:
        raise TunerConfigurationError(f"method {method!r} is invalid. Should be one of {METHODS}.")
    if method == "fit" and dataloaders is not None:
        raise TunerConfigurationError(
            "In tuner with method='fit', `dataloaders` argument should be None, please consider setting "
            "`train_dataloaders` and `val_dataloaders` instead."
        )
    if method != "fit" and (train_dataloaders is not None or val_dataloaders is not None):
        raise TunerConfigurationError(
            f"In tuner with `method`={method!r}, `train_dataloaders` and `val_dataloaders` arguments should be "
            "None, please consider setting `dataloaders` instead."
        )


def _check_no_finder(trainer: pl.Trainer, search: type, namespace: LightningNamespace, name: str) -> None:
    # Ours (built on either package) or Lightning's own finder of the trainer's package.
    lightnings = tuple(cls for cls in namespace.finder_callbacks if cls.__name__ == name)
    if any(isinstance(cb, (search, *lightnings)) for cb in trainer.callbacks):
        raise TunerConfigurationError(
            f"Trainer is already configured with a `{name}` callback. Please remove it if you want to use the Tuner."
        )


@contextmanager
def _attached(trainer: pl.Trainer, callback: Any) -> Iterator[None]:
    trainer.callbacks = [callback, *trainer.callbacks]
    try:
        yield
    finally:
        trainer.callbacks = [cb for cb in trainer.callbacks if cb is not callback]


def _run(trainer: pl.Trainer, method: str, model: Any, train: Any, val: Any, dataloaders: Any, dm: Any) -> None:
    if method == "fit":
        trainer.fit(model, train, val, dm)
    else:
        getattr(trainer, method)(model, dataloaders, datamodule=dm)
