"""What the two finder callbacks share: the ``fast_dev_run`` skip, under the Tuner the end of the trainer call, and
being built on the ``Callback`` class of either Lightning package.

``LearningRateFinder`` and ``BatchSizeFinder`` each run one search from a hook; both skip it (with Lightning's
warning) under ``fast_dev_run``, and both end the trainer call right after it when the :class:`Tuner` started that
call only to search (``early_exit=True``), through the one private touch in :mod:`private`, with the exception of
the running trainer's package.

A search's logic derives from :class:`SearchCallback` and from no Lightning class; :func:`.namespace.callback_class`
puts it on the ``Callback`` of a package. Every Lightning name a hook needs comes from the package of the trainer
that calls it, so a callback built on one package also runs in a trainer of the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from lightning_utilities.core.rank_zero import rank_zero_warn

from traenslenzor.tuner.lightning.namespace import callback_class, namespace_of
from traenslenzor.tuner.lightning.private import end_tuning_run

if TYPE_CHECKING:
    import lightning.pytorch as pl


class SearchCallback:
    """A callback's search logic (put on a package's ``Callback`` by :func:`.namespace.callback_class`).

    Args:
        early_exit: end the trainer call once the search is done (the :class:`Tuner` sets it; a callback in a
            normal ``trainer.fit`` leaves it False and training goes on).
    """

    callback_name: ClassVar[str]  # the name of the callback classes built from this search

    def __init__(self, *, early_exit: bool = False) -> None:
        super().__init__()
        self.early_exit = early_exit

    def skipped_for_fast_dev_run(self, trainer: pl.Trainer, name: str) -> bool:
        """Whether ``fast_dev_run`` skips the search (Lightning's warning names ``name``)."""
        if trainer.fast_dev_run:
            rank_zero_warn(f"Skipping {name} since `fast_dev_run` is enabled.")
            return True
        return False

    @contextmanager
    def ending_the_tuner_call(self, trainer: pl.Trainer) -> Iterator[None]:
        """Run the block, then end ``trainer``'s call where ``early_exit`` (not after an error: that propagates)."""
        yield
        if self.early_exit:
            end_tuning_run(namespace_of(trainer).package)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A class built by callback_class is not importable by its name: pickle (ddp_spawn) stores the recipe.
        cls = type(self)
        if "search_class" in cls.__dict__:
            return (_new_callback, (cls.search_class, cls.lightning_package), self.__dict__)
        return super().__reduce_ex__(protocol)  # a user's subclass: pickled by its name, as any class


def _new_callback(search: type[SearchCallback], package: str) -> SearchCallback:
    """An empty instance of ``search``'s callback class for ``package`` (pickle then sets its state)."""
    cls = callback_class(search, package)
    return cls.__new__(cls)
