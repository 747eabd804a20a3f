"""Tasks at the users' horizon and schedule for the LR benchmark (issue 11.5), and how they are trained.

Three groups, each with design tasks (anyone may tune against them) and hold-out tasks (committed before they were
measured; never used to tune anything):

* ``long``: constant LR for >= 3000 steps, at least 10 x the tuner's 300-step cap (3 x ``num_training``);
* ``onecycle``: OneCycleLR with ``max_lr = 3 x`` the base LR over 2000-3000 steps, as the app trains
  (``traenslenzor.doc_classifier.training.module``: the schedule's knobs are read from the app's ``SchedulerConfig``);
* ``app``: the app's own backbones (``tiny_cnn``, ``alexnet``) on the app's synthetic documents, with the app's
  optimizer (``build_optimizer``: AdamW or SGD-momentum, weight decay on weights only) and OneCycle; scored on
  validation loss and accuracy. Pages are rendered once (``SyntheticDocuments``) and normalised by the training
  split's pixel statistics; no augmentation (the app's ``val`` transform), so that every run sees the same pixels.

The small models, data and optimizers come from ``lr_tasks`` (duck-typed: a ``HorizonTask`` has the attributes its
builders read). Training methods: ``"grid"`` (the task's optimizer at a given base LR and schedule), ``"default"``
(the same at the LR a user picks without tuning: 1e-3 for Adam-family, 0.1 for SGD-family), ``"prodigy"``
(``prodigyopt.Prodigy``, lr = 1, the task's schedule with its peak at 1) and ``"schedulefree"``
(``schedulefree.AdamWScheduleFree`` at its defaults, no schedule: it replaces one).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks import lr_tasks

# Bump when the way these tasks are built or trained changes, so cached oracles are recomputed.
HORIZON_CODE_VERSION = 1
REPO = Path(__file__).resolve().parent.parent
PAGE_CACHE = REPO / ".cache" / "bench_pages"  # rendered synthetic pages (gitignored)

# What a user picks without tuning (the optimizers' own docs and the app's config default for AdamW).
DEFAULT_LRS = {
    "sgd": 0.1, "sgd_momentum": 0.1, "sgd_nesterov": 0.1,
    "adam": 1e-3, "adamw": 1e-3, "nadam": 1e-3, "radam": 1e-3, "adamax": 1e-3,
    "rmsprop": 1e-2, "adagrad": 1e-2,
}  # fmt: skip
INSTEAD = ("default", "prodigy", "schedulefree")


@dataclass(frozen=True)
class HorizonTask:
    """One training task at the users' horizon; ``lattice`` is the oracle's first window in quarter-decades."""

    name: str
    group: str  # long | onecycle | app
    split: str  # design | holdout
    model: str  # an lr_tasks model, or an app backbone (tiny_cnn | alexnet)
    data: str  # an lr_tasks data kind, or "documents"
    loss: str  # ce | ce_smooth | mse
    optimizer: str  # an lr_tasks optimizer, or for the app: adamw | sgd (the app's SGD: momentum 0.9)
    steps: int  # training budget in optimizer steps
    schedule: str = "constant"  # constant | onecycle
    batch_size: int = 32
    input_scale: float = 1.0
    image_size: int = 64  # documents only
    n_train: int = 32768
    n_eval: int = 2048
    finder_range: tuple[float, float] = (1e-8, 1.0)
    num_training: int = 100
    lattice: tuple[int, int] = (-16, -4)  # lr = 10 ** (k / 4) for k in this range, at ``coarse`` spacing first
    coarse: int = 2  # quarter-decades between first-pass grid points (then 0.25-decade fill next to the best)
    oracle_seeds: int = 2
    anchors: bool = True  # run Lightning's and torch-lr-finder's own sweeps (False: too costly on this model)

    def key(self) -> str:
        text = json.dumps({"task": asdict(self), "version": HORIZON_CODE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def classification(self) -> bool:
        return self.loss != "mse"

    @property
    def weight_decay(self) -> float:
        return 0.01 if self.optimizer == "adamw" or self.data == "documents" else 0.0


SGD_RANGE = (-12, 0)  # 1e-3 .. 1
ADAM_RANGE = (-18, -6)  # ~1.8e-5 .. 3e-2

DESIGN_TASKS: tuple[HorizonTask, ...] = (
    # long horizon, constant LR
    HorizonTask("long_mlp_adam", "long", "design", "mlp", "blobs", "ce", "adam", steps=3000, lattice=ADAM_RANGE),
    HorizonTask(
        "long_cnn_bn_sgdm",
        "long",
        "design",
        "cnn_bn",
        "images",
        "ce",
        "sgd_momentum",
        steps=3000,
        finder_range=(1e-8, 10.0),
        lattice=SGD_RANGE,
    ),
    # OneCycle, max_lr = 3 x base
    HorizonTask(
        "oc_mlp_adamw",
        "onecycle",
        "design",
        "mlp",
        "blobs",
        "ce",
        "adamw",
        steps=2000,
        schedule="onecycle",
        lattice=ADAM_RANGE,
    ),
    HorizonTask(
        "oc_cnn_bn_sgdm",
        "onecycle",
        "design",
        "cnn_bn",
        "images",
        "ce",
        "sgd_momentum",
        steps=2000,
        schedule="onecycle",
        finder_range=(1e-8, 10.0),
        lattice=SGD_RANGE,
    ),
    # the app's backbones on synthetic documents, the app's recipe
    HorizonTask(
        "app_tiny_cnn_adamw_64",
        "app",
        "design",
        "tiny_cnn",
        "documents",
        "ce",
        "adamw",
        steps=500,
        schedule="onecycle",
        n_train=4096,
        n_eval=1024,
        lattice=(-16, -4),
    ),
    HorizonTask(
        "app_alexnet_adamw_64",
        "app",
        "design",
        "alexnet",
        "documents",
        "ce",
        "adamw",
        steps=200,
        schedule="onecycle",
        batch_size=16,
        n_train=2048,
        n_eval=512,
        lattice=(-22, -10),
        coarse=4,
        oracle_seeds=1,
        anchors=False,
    ),
)

# Hold-out tasks, committed (2026-12-02) before any of them was measured; never used to tune anything: another
# loss (MSE) and plain-MLP SGD momentum, a deeper AdamW MLP, BatchNorm in an MLP, a CNN without normalisation with
# Adam, and the app's SGD recipe on tiny_cnn at another resolution.
HOLDOUT_TASKS: tuple[HorizonTask, ...] = (
    HorizonTask(
        "long_mlp_sgdm_mse",
        "long",
        "holdout",
        "mlp",
        "regression",
        "mse",
        "sgd_momentum",
        steps=3000,
        finder_range=(1e-8, 10.0),
        lattice=SGD_RANGE,
    ),
    HorizonTask(
        "long_mlp_deep_adamw", "long", "holdout", "mlp_deep", "blobs", "ce", "adamw", steps=3000, lattice=ADAM_RANGE
    ),
    HorizonTask(
        "oc_mlp_bn_sgdm",
        "onecycle",
        "holdout",
        "mlp_bn",
        "blobs",
        "ce",
        "sgd_momentum",
        steps=2000,
        schedule="onecycle",
        finder_range=(1e-8, 10.0),
        lattice=SGD_RANGE,
    ),
    HorizonTask(
        "oc_cnn_adam",
        "onecycle",
        "holdout",
        "cnn",
        "images",
        "ce",
        "adam",
        steps=2000,
        schedule="onecycle",
        lattice=ADAM_RANGE,
    ),
    HorizonTask(
        "app_tiny_cnn_sgd_80",
        "app",
        "holdout",
        "tiny_cnn",
        "documents",
        "ce",
        "sgd",
        steps=300,
        schedule="onecycle",
        image_size=80,
        n_train=4096,
        n_eval=1024,
        lattice=SGD_RANGE,
        oracle_seeds=1,
    ),
)

TASKS = DESIGN_TASKS + HOLDOUT_TASKS
TASKS_BY_NAME = {t.name: t for t in TASKS}
GROUPS = ("long", "onecycle", "app")


# ---------------------------------------------------------------------------------------------------------------
# data


def make_data(task: HorizonTask) -> lr_tasks.TaskData:
    """The task's data, the same for every seed (small tasks: ``lr_tasks.make_data``; documents: rendered pages)."""
    if task.data != "documents":
        return lr_tasks.make_data(task, n_train=task.n_train, n_eval=task.n_eval)  # type: ignore[arg-type]
    from traenslenzor.doc_classifier.data.synthetic import SyntheticDocuments

    splits = {}
    for split, length in (("train", task.n_train), ("val", task.n_eval)):
        pages = SyntheticDocuments(split, length, task.image_size, seed=0, cache_dir=PAGE_CACHE)
        x = torch.from_numpy(np.stack([pages.page(i) for i in range(length)])).float().div_(255)[:, None]
        splits[split] = (x, torch.from_numpy(pages.labels))
    mean, std = splits["train"][0].mean(), splits["train"][0].std()
    (xt, yt), (xe, ye) = ((((x - mean) / std), y) for x, y in (splits["train"], splits["val"]))
    return lr_tasks.TaskData(xt, yt, xe, ye)


def make_loader(task: HorizonTask, data: lr_tasks.TaskData, seed: int, batch_size: int | None = None) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    dataset = TensorDataset(data.x_train, data.y_train)
    return DataLoader(
        dataset, batch_size=batch_size or task.batch_size, shuffle=True, drop_last=True, generator=generator
    )


# ---------------------------------------------------------------------------------------------------------------
# models, optimizers, schedules


def make_model(task: HorizonTask, seed: int) -> nn.Module:
    if task.data != "documents":
        return lr_tasks.make_model(task, seed)  # type: ignore[arg-type]
    from traenslenzor.doc_classifier.models.backbones import build_model

    torch.manual_seed(seed)
    return build_model(task.model, num_classes=16, in_channels=1, dropout=0.5, image_size=task.image_size)


def make_optimizer(task: HorizonTask, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The task's own optimizer at ``lr`` (for documents: the app's ``build_optimizer`` with its defaults)."""
    if task.data != "documents":
        return lr_tasks.make_optimizer(task, model.parameters(), lr)  # type: ignore[arg-type]
    from traenslenzor.doc_classifier.config import OptimizerConfig
    from traenslenzor.doc_classifier.training.module import build_optimizer

    return build_optimizer(model, OptimizerConfig(name=task.optimizer), lr)


def _groups(task: HorizonTask, model: nn.Module) -> list[dict]:
    if task.data == "documents":
        from traenslenzor.doc_classifier.training.module import parameter_groups

        return parameter_groups(model, task.weight_decay)
    return [{"params": list(model.parameters()), "weight_decay": task.weight_decay}]


def make_loss(task: HorizonTask) -> nn.Module:
    return lr_tasks.make_loss(task)  # type: ignore[arg-type]


def onecycle(optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """OneCycleLR as ``DocClassifier.configure_optimizers`` builds it, from the app's ``SchedulerConfig`` defaults."""
    from traenslenzor.doc_classifier.config import SchedulerConfig

    s = SchedulerConfig()
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=s.pct_start, anneal_strategy=s.anneal_strategy,
        cycle_momentum=s.cycle_momentum, base_momentum=s.base_momentum, max_momentum=s.max_momentum,
        div_factor=s.div_factor, final_div_factor=s.final_div_factor, three_phase=s.three_phase,
    )  # fmt: skip


MAX_LR_FACTOR = 3.0  # the app's tuner_config.max_lr_factor: OneCycle peaks at 3 x the base LR


def _method_optimizer(
    task: HorizonTask, model: nn.Module, method: str, lr: float | None
) -> tuple[torch.optim.Optimizer, float | None]:
    """(optimizer, OneCycle peak or None) for a training method."""
    if method in ("grid", "default"):
        base = DEFAULT_LRS[task.optimizer] if method == "default" else lr
        assert base is not None
        optimizer = make_optimizer(task, model, base)
        return optimizer, (MAX_LR_FACTOR * base if task.schedule == "onecycle" else None)
    if method == "prodigy":
        from prodigyopt import Prodigy

        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Using decoupled weight decay"
            optimizer = Prodigy(_groups(task, model), lr=1.0, weight_decay=task.weight_decay)
        return optimizer, (1.0 if task.schedule == "onecycle" else None)
    if method == "schedulefree":
        from schedulefree import AdamWScheduleFree

        return AdamWScheduleFree(_groups(task, model), weight_decay=task.weight_decay), None
    raise ValueError(f"unknown training method {method!r}; use grid, {', '.join(INSTEAD)}")


# ---------------------------------------------------------------------------------------------------------------
# training and evaluation


@torch.no_grad()
def evaluate(task: HorizonTask, model: nn.Module, data: lr_tasks.TaskData) -> tuple[float, float | None]:
    """(held-out loss, accuracy or None); loss inf when not finite. BN statistics made precise first."""
    lr_tasks.precise_batchnorm(model, data)
    model.eval()
    losses, correct = [], 0
    loss_fn = make_loss(task)
    for start in range(0, len(data.x_eval), 512):
        x, y = data.x_eval[start : start + 512], data.y_eval[start : start + 512]
        out = model(x)
        losses.append(float(loss_fn(out, y)) * len(y))
        if task.classification:
            correct += int((out.argmax(dim=1) == y).sum())
    loss = sum(losses) / len(data.x_eval)
    accuracy = correct / len(data.x_eval) if task.classification else None
    return (loss if math.isfinite(loss) else math.inf), accuracy


def untrained(task: HorizonTask, data: lr_tasks.TaskData, seed: int) -> tuple[float, float | None]:
    return evaluate(task, make_model(task, seed), data)


def train(
    task: HorizonTask,
    data: lr_tasks.TaskData,
    seed: int,
    *,
    method: str = "grid",
    lr: float | None = None,
    batch_size: int | None = None,
    steps: int | None = None,
) -> tuple[float, float | None]:
    """Trains a fresh model (init and batch order from ``seed``); (held-out loss, accuracy), loss inf on divergence."""
    model = make_model(task, seed)
    steps = steps or task.steps
    optimizer, peak = _method_optimizer(task, model, method, lr)
    scheduler = onecycle(optimizer, peak, steps) if peak is not None else None
    loss_fn = make_loss(task)
    batches = lr_tasks.cycle(make_loader(task, data, seed, batch_size))
    model.train()
    if hasattr(optimizer, "train"):
        optimizer.train()  # schedule-free keeps two sequences; train() selects the one gradients are taken at
    for _ in range(steps):
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            return math.inf, (1.0 / 16 if task.data == "documents" else 0.25) if task.classification else None
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    if hasattr(optimizer, "eval"):
        optimizer.eval()  # schedule-free: evaluate at the averaged weights
    return evaluate(task, model, data)
