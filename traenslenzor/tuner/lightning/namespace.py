"""Which Lightning package a trainer belongs to, and the names the adapter takes from that package.

Lightning ships the same code under two names: ``lightning.pytorch`` in the unified ``lightning`` package and
``pytorch_lightning`` in the standalone ``pytorch-lightning`` package. Their classes are distinct objects: a
``pytorch_lightning`` trainer ends a tuning call only on *its* ``_TunerExitException``, its ``is_overridden`` knows
only *its* ``LightningModule`` and ``Callback``, its user code returns *its* ``CombinedLoader``. So the adapter never
takes a Lightning name from a fixed package: it asks :func:`namespace_of` for the package of the trainer (or
module) it was given and uses that :class:`LightningNamespace`. Either package alone is enough; where both are
installed, both are imported (the tuner's error types are the ``MisconfigurationException`` of each).

The one place that builds classes per package is :func:`callback_class`: a callback in ``Trainer(callbacks=[...])``
must derive from the ``Callback`` of the trainer's package, so each search's callback class is built once per
package from the same search logic.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from lightning_utilities.core.overrides import is_overridden

# The Lightning packages the adapter supports, unified first: it is the default where an object names neither.
PACKAGES = ("lightning.pytorch", "pytorch_lightning")


@dataclass(frozen=True)
class LightningNamespace:
    """The names of one Lightning package that the adapter uses."""

    package: str  # "lightning.pytorch" or "pytorch_lightning"
    Callback: type
    LightningModule: type
    LightningDataModule: type
    CombinedLoader: type
    finder_callbacks: tuple[type, ...]  # Lightning's own LearningRateFinder and BatchSizeFinder

    def is_overridden(self, method_name: str, instance: Any) -> bool:
        """Whether ``instance`` (a module or datamodule of this package) defines ``method_name`` itself."""
        # lightning_utilities' function is what both packages' is_overridden call once they know the parent class.
        parent = self.LightningDataModule if isinstance(instance, self.LightningDataModule) else self.LightningModule
        return is_overridden(method_name, instance, parent)


@functools.cache
def lightning_namespace(package: str) -> LightningNamespace:
    """The names of ``package`` (one of :data:`PACKAGES`), imported on the first call."""
    if package not in PACKAGES:
        raise ValueError(f"package={package!r}: the Lightning adapter supports {PACKAGES}.")
    root = importlib.import_module(package)
    callbacks = importlib.import_module(f"{package}.callbacks")
    combined = importlib.import_module(f"{package}.utilities.combined_loader")
    return LightningNamespace(
        package=package,
        Callback=root.Callback,
        LightningModule=root.LightningModule,
        LightningDataModule=root.LightningDataModule,
        CombinedLoader=combined.CombinedLoader,
        finder_callbacks=(callbacks.LearningRateFinder, callbacks.BatchSizeFinder),
    )


def package_of(obj: Any) -> str | None:
    """The Lightning package whose class ``obj`` is an instance of (a subclass counts), or None."""
    for cls in type(obj).__mro__:
        module = cls.__module__ or ""
        for package in PACKAGES:
            if module == package or module.startswith(f"{package}."):
                return package
    return None


def namespace_of(*objs: Any) -> LightningNamespace:
    """The namespace of the first of ``objs`` (a trainer, module, datamodule) that belongs to a Lightning package;
    the default package's where none does (a stand-in object in a test)."""
    for obj in objs:
        package = package_of(obj)
        if package is not None:
            return lightning_namespace(package)
    return lightning_namespace(default_package())


@functools.cache
def installed_packages() -> tuple[str, ...]:
    """The supported Lightning packages that can be imported here, in :data:`PACKAGES` order."""
    return tuple(package for package in PACKAGES if importlib.util.find_spec(package.split(".")[0]) is not None)


def default_package() -> str:
    """The unified package where it is installed, else the standalone one."""
    installed = installed_packages()
    if not installed:
        raise ImportError(
            "The Lightning adapter needs Lightning: `pip install lightning` (or `pip install pytorch-lightning`)."
        )
    return installed[0]


def misconfiguration_exceptions() -> tuple[type[Exception], ...]:
    """``MisconfigurationException`` of every installed package (each package has its own class)."""
    return tuple(
        importlib.import_module(f"{package}.utilities.exceptions").MisconfigurationException
        for package in installed_packages()
    )


@functools.cache
def callback_class(search: type, package: str) -> type:
    """The callback ``search.callback_name`` of ``package``: ``search`` (the callback's logic, deriving from no
    Lightning class) on that package's ``Callback``.

    Built once per (search, package) pair, in ``search``'s module, with its docstring. Instances pickle by this
    recipe (``SearchCallback.__reduce_ex__``): a built class cannot be imported by its name.
    """
    base = lightning_namespace(package).Callback
    attributes = {
        "__module__": search.__module__,
        "__qualname__": search.callback_name,
        "__doc__": search.__doc__,
        "lightning_package": package,
        "search_class": search,
    }
    return type(search.callback_name, (search, base), attributes)
