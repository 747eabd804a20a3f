"""The LR finders the benchmarks compare, each run the same way: ours, Lightning's ``Tuner`` and torch-lr-finder.

Each runner takes a freshly built model (or LightningModule), its optimizer, loss and loader, and the sweep; the
caller builds them from its task (``lr_tasks`` or ``horizon_tasks``), so every finder starts from the same weights
and batch order. Lightning and torch-lr-finder are imported when run (torch-lr-finder is in ``.[bench]``).
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmarks.common import cpu_trainer, quiet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    """The range and steps every finder gets."""

    min_lr: float
    max_lr: float
    num_training: int


def run_ours(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, loader: Any, sweep: Sweep, **options: Any
) -> dict[str, Any]:
    """``find_lr`` as a user calls it (``options``: its other keywords, e.g. ``probe_batches=0``): the result, the
    seconds it took, and the model's forward calls."""
    from traenslenzor.tuner import find_lr

    calls = [0]
    hook = model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = find_lr(
            model, optimizer, loss_fn, loader,
            min_lr=sweep.min_lr, max_lr=sweep.max_lr, num_training=sweep.num_training, progress_bar=False, **options,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    hook.remove()
    return {"result": result, "seconds": seconds, "forward_calls": calls[0]}


def lit_module(
    make_model: Callable[[], nn.Module],
    loss_fn: nn.Module,
    make_optimizer: Callable[[nn.Module, float], torch.optim.Optimizer],
    lr: float,
):  # -> lightning.pytorch.LightningModule (imported lazily)
    """A task's model, loss and optimizer as a LightningModule (``self.model``, ``self.lr``), for the Tuners."""
    import lightning.pytorch as pl

    class LitTask(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_model()
            self.loss_fn = loss_fn
            self.lr = lr

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            x, y = batch
            return self.loss_fn(self.model(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return make_optimizer(self, self.lr)

    return LitTask()


def run_tuner(tuner: Any, module: Any, loader: Any, sweep: Sweep, **options: Any) -> dict[str, Any]:
    """``tuner(trainer).lr_find(...)`` (Lightning's ``Tuner`` or ours) on a quiet CPU trainer: suggestion, seconds
    (search and suggestion), curve points."""
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings(), quiet():
        warnings.simplefilter("ignore")
        trainer = cpu_trainer(root, max_epochs=1000)  # Lightning's search would otherwise end with the first epoch
        start = time.perf_counter()
        finder = tuner(trainer).lr_find(
            module, train_dataloaders=loader, min_lr=sweep.min_lr, max_lr=sweep.max_lr,
            num_training=sweep.num_training, update_attr=False, **options,
        )  # fmt: skip
        suggestion = finder.suggestion()
        seconds = time.perf_counter() - start
    return {"suggestion": suggestion, "seconds": seconds, "steps": len(finder.results["lr"])}


def run_lightning(module: Any, loader: Any, sweep: Sweep) -> dict[str, Any]:
    """Lightning's own ``Tuner.lr_find`` (see :func:`run_tuner`)."""
    from lightning.pytorch.tuner import Tuner

    return run_tuner(Tuner, module, loader, sweep)


def run_torch_lr_finder(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, loader: Any, sweep: Sweep, name: str
) -> dict[str, Any]:
    """torch-lr-finder's ``range_test`` and the steepest-gradient suggestion its ``plot`` makes (None when it has
    none); ``name`` names the task in the log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    finder = LRFinder(model, optimizer, loss_fn, device="cpu")
    with quiet():  # it prints and shows a progress bar it cannot turn off
        start = time.perf_counter()
        finder.range_test(loader, start_lr=sweep.min_lr, end_lr=sweep.max_lr, num_iter=sweep.num_training)
        seconds = time.perf_counter() - start
        finder.reset()
    fig, ax = plt.subplots()
    try:  # its suggestion lives in plot(); None when too few points
        with quiet():
            _, suggestion = finder.plot(ax=ax, suggest_lr=True)
    except Exception as exc:  # an anchor failing to suggest scores as "no suggestion"
        log.info("torch-lr-finder gave no suggestion on %s: %s", name, exc)
        suggestion = None
    plt.close(fig)
    return {
        "suggestion": None if suggestion is None else float(suggestion),
        "seconds": seconds,
        "steps": len(finder.history["lr"]),
    }
