"""Where a Lightning project keeps its learning rate and batch size, and how the tuner reads and writes them.

Lightning's convention (kept here so that switching tuners changes nothing for the user): a hyper-parameter lives
as an attribute of the ``LightningModule``, a key of ``model.hparams``, an attribute of the ``LightningDataModule``
or a key of ``datamodule.hparams`` -- possibly in several of these at once. The LR is found as ``attr_name`` when
given, else the first of ``lr``, ``learning_rate`` present anywhere. A tuned value is written to every holder of
the name, so that whichever one ``configure_optimizers`` or ``train_dataloader`` reads sees it.

Unlike Lightning, each holder's own original value is remembered and put back when a search fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightning_utilities.core.rank_zero import rank_zero_warn

from traenslenzor.tuner.lightning.namespace import misconfiguration_exceptions

LR_ATTR_NAMES = ("lr", "learning_rate")

# Each Lightning package has its own MisconfigurationException; the tuner's errors are that of every installed one,
# so that an `except` written for either package catches them, whoever raised them (even before a trainer is known).
_MISCONFIGURATION = misconfiguration_exceptions()


class MissingAttributeError(*_MISCONFIGURATION, AttributeError):
    """No holder has the hyper-parameter the tuner must read and update.

    It is both Lightning's ``MisconfigurationException`` (of every installed Lightning package) and an
    ``AttributeError`` so that ``except`` clauses written for Lightning's tuner (which raises one or the other) still
    catch it.
    """


class TunerConfigurationError(*_MISCONFIGURATION, ValueError):
    """A tuner argument or trainer set-up the tuner cannot work with (raised before any training).

    Both Lightning's ``MisconfigurationException`` and a ``ValueError``, for the same reason as above.
    """


def _has(holder: Any, name: str) -> bool:
    if isinstance(holder, Mapping):
        return name in holder
    return hasattr(holder, name)


def _hparams(obj: Any) -> Any | None:
    # `hparams` exists on every LightningModule/LightningDataModule (empty unless save_hyperparameters was called).
    return getattr(obj, "hparams", None) if obj is not None else None


@dataclass(frozen=True)
class AttrHolders:
    """Every object that holds hyper-parameter ``name``, in Lightning's lookup order."""

    name: str
    holders: tuple[Any, ...]

    @classmethod
    def find(cls, model: Any, datamodule: Any | None, name: str) -> AttrHolders:
        """Look for ``name`` on ``model``, ``model.hparams``, ``datamodule`` and ``datamodule.hparams``."""
        candidates = (model, _hparams(model), datamodule, _hparams(datamodule))
        holders = tuple(h for h in candidates if h is not None and _has(h, name))
        return cls(name, holders)

    def __bool__(self) -> bool:
        return bool(self.holders)

    def values(self) -> list[Any]:
        """The value each holder has now, in holder order."""
        return [h[self.name] if isinstance(h, Mapping) else getattr(h, self.name) for h in self.holders]

    def write(self, value: Any) -> None:
        """Set ``name`` to ``value`` on every holder."""
        self.restore([value] * len(self.holders))

    def restore(self, values: list[Any]) -> None:
        """Give each holder back its own value (as returned by :meth:`values`)."""
        for holder, value in zip(self.holders, values, strict=True):
            if isinstance(holder, Mapping):
                holder[self.name] = value
            else:
                setattr(holder, self.name, value)


def lr_holders(model: Any, datamodule: Any | None, attr_name: str = "") -> AttrHolders:
    """The holders of the LR: ``attr_name`` if given, else the first of ``lr``/``learning_rate`` found anywhere.

    Raises:
        MissingAttributeError: no holder has the name; raised before any training.
    """
    names = (attr_name,) if attr_name else LR_ATTR_NAMES
    for name in names:
        holders = AttrHolders.find(model, datamodule, name)
        if holders:
            return holders
    where = "`model`, `model.hparams`, the datamodule or `datamodule.hparams`"
    if attr_name:
        raise MissingAttributeError(
            f"lr_find(attr_name={attr_name!r}): no attribute {attr_name!r} on {where}. Fix the name, or add it "
            f"(e.g. `self.{attr_name} = 1e-3` or `self.save_hyperparameters()` in __init__)."
        )
    # "should have one of these fields" is Lightning's wording, kept for code that matches on it.
    raise MissingAttributeError(
        f"lr_find needs the learning rate: {where} should have one of these fields: {list(LR_ATTR_NAMES)}, and "
        "none does. Add one (e.g. `self.learning_rate = 1e-3`, or an __init__ argument `learning_rate` with "
        "`self.save_hyperparameters()`) and read it in configure_optimizers, or pass attr_name='<your name>'; "
        "or pass update_attr=False to only run the search."
    )


def batch_size_holders(
    model: Any, datamodule: Any | None, batch_arg_name: str, *, warn_duplicates: bool = False
) -> AttrHolders:
    """The holders of the batch size ``batch_arg_name``.

    ``warn_duplicates``: warn (once per search, so the caller at the search's start asks) when both ``model.<name>``
    and ``model.hparams.<name>`` exist -- two copies that the dataloader hook may read either of.

    Raises:
        MissingAttributeError: no holder has the name; raised before any training.
    """
    holders = AttrHolders.find(model, datamodule, batch_arg_name)
    if not holders:
        raise MissingAttributeError(
            f"scale_batch_size(batch_arg_name={batch_arg_name!r}): no field {batch_arg_name!r} on `model`, "
            "`model.hparams`, the datamodule or `datamodule.hparams`. Store the batch size there (e.g. "
            f"`self.{batch_arg_name} = 32` or `self.save_hyperparameters()`) and read it in your *_dataloader "
            "hook, or pass batch_arg_name='<your name>'."
        )
    hparams = _hparams(model)
    if warn_duplicates and model in holders.holders and hparams is not None and hparams in holders.holders:
        # Lightning's sentence first (code may match on it); then what the tuner does about it.
        rank_zero_warn(
            f"Field `model.{batch_arg_name}` and `model.hparams.{batch_arg_name}` are mutually exclusive! The "
            "batch size finder writes the found size to both; keep only one of them, so that the dataloader hook "
            "cannot read a stale copy."
        )
    return holders
