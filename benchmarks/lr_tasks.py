"""Small CPU training tasks for the LR-suggestion benchmark, and constant-LR training on them.

Each task is a frozen description (model, optimizer, loss, data, training budget) from which data, model and
optimizer are built deterministically from seeds, so that a task's hash keys the oracle cache. The suite spans
four model families (linear, MLP, CNN with BatchNorm, tiny transformer), five optimizers and both CE and MSE, and
its input scales are chosen so that the grid-best constant LRs spread over several decades (1e-4 .. 1e1).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# Bump when the way tasks are built or trained changes, so cached oracles are recomputed.
TASK_CODE_VERSION = 3


@dataclass(frozen=True)
class Task:
    """One training task: what to train, with which optimizer, for how many steps."""

    name: str
    model: str  # linear | mlp | mlp_bn | mlp_deep | cnn | cnn_bn | cnn_gn | resnet_bn | transformer | gru
    data: str  # blobs | regression | images | sequences
    loss: str  # ce | ce_smooth (label smoothing 0.1) | mse
    optimizer: str  # sgd | sgd_momentum | sgd_nesterov | adam | adamw | rmsprop | adagrad | nadam | radam | adamax
    steps: int  # fixed training budget (optimizer steps at constant LR)
    batch_size: int = 32
    input_scale: float = 1.0  # scales the inputs, which shifts the best LR for SGD-like optimizers
    grid: tuple[float, float] = (1e-5, 1e1)  # oracle LR grid bounds (log-spaced, inclusive)
    finder_range: tuple[float, float] = (1e-8, 1.0)  # (min_lr, max_lr) given to every finder
    num_training: int = 100  # finder steps

    def key(self) -> str:
        """Hash of the task definition (and the code version), keying the oracle cache."""
        text = json.dumps({"task": asdict(self), "version": TASK_CODE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


TASKS: tuple[Task, ...] = (
    Task("linreg_sgd", "linear", "regression", "mse", "sgd", steps=150, input_scale=0.3, finder_range=(1e-8, 10.0)),
    Task("logreg_sgdm", "linear", "blobs", "ce", "sgd_momentum", steps=150, input_scale=10.0),
    Task("mlp_adam", "mlp", "blobs", "ce", "adam", steps=200),
    Task("mlp_sgd", "mlp", "blobs", "ce", "sgd", steps=200, finder_range=(1e-8, 10.0)),
    Task("mlp_rmsprop_mse", "mlp", "regression", "mse", "rmsprop", steps=150),
    Task("cnn_bn_sgdm", "cnn_bn", "images", "ce", "sgd_momentum", steps=150, finder_range=(1e-8, 10.0)),
    Task("cnn_bn_adamw", "cnn_bn", "images", "ce", "adamw", steps=150),
    Task("transformer_adamw", "transformer", "sequences", "ce", "adamw", steps=200),
    Task("transformer_sgdm", "transformer", "sequences", "ce", "sgd_momentum", steps=200, finder_range=(1e-8, 10.0)),
    Task("linreg_adam", "linear", "regression", "mse", "adam", steps=150, input_scale=3.0),
    # settings other than the defaults: longer/shorter sweeps and budgets, bigger batches
    Task("mlp_adamw_mse_b128", "mlp", "regression", "mse", "adamw", steps=300, batch_size=128, num_training=200),
    Task("cnn_bn_rmsprop", "cnn_bn", "images", "ce", "rmsprop", steps=100, finder_range=(1e-7, 10.0)),
    # added after the default rule was fixed, as unseen tasks (a final hold-out, never used to tune anything)
    Task("cnn_sgdm", "cnn", "images", "ce", "sgd_momentum", steps=150, finder_range=(1e-8, 10.0)),
    Task("transformer_rmsprop", "transformer", "sequences", "ce", "rmsprop", steps=200),
    Task("mlp_sgdm_mse_b64", "mlp", "regression", "mse", "sgd_momentum", steps=250, batch_size=64),
    # added after the default rule was changed to the rise onset (second hold-out, never used to tune anything):
    # another optimizer, a deeper/wider model with label smoothing, Nesterov with a small batch
    Task("mlp_adagrad", "mlp", "blobs", "ce", "adagrad", steps=200),
    Task("mlp_deep_ce_ls_adam", "mlp_deep", "blobs", "ce_smooth", "adam", steps=150),
    Task(
        "cnn_bn_nesterov_b16",
        "cnn_bn",
        "images",
        "ce",
        "sgd_nesterov",
        steps=200,
        batch_size=16,
        finder_range=(1e-8, 10.0),
    ),
    # third hold-out, added after the oracle went to 4 seeds and measured once, never used to tune anything:
    # a recurrent model, two more optimizers, plain SGD on a BatchNorm CNN, AdamW on small-scale inputs
    Task("gru_adam", "gru", "sequences", "ce", "adam", steps=200),
    Task("mlp_nadam_mse", "mlp", "regression", "mse", "nadam", steps=150),
    Task("cnn_bn_sgd", "cnn_bn", "images", "ce", "sgd", steps=150, finder_range=(1e-8, 10.0)),
    Task("logreg_adamw_small_inputs", "linear", "blobs", "ce", "adamw", steps=150, input_scale=0.1),
    # fourth hold-out, committed before any of it was measured: three more BatchNorm models (a residual CNN, an
    # MLP, Adagrad with batch 64), a GroupNorm CNN and plain SGD on an MLP with a small batch
    Task("resnet_bn_adam", "resnet_bn", "images", "ce", "adam", steps=150),
    Task("mlp_bn_sgdm", "mlp_bn", "blobs", "ce", "sgd_momentum", steps=200, finder_range=(1e-8, 10.0)),
    Task(
        "cnn_bn_adagrad_b64", "cnn_bn", "images", "ce", "adagrad", steps=150, batch_size=64, finder_range=(1e-8, 10.0)
    ),
    Task("cnn_gn_sgdm", "cnn_gn", "images", "ce", "sgd_momentum", steps=150, finder_range=(1e-8, 10.0)),
    Task("mlp_sgd_mse_b16", "mlp", "regression", "mse", "sgd", steps=300, batch_size=16, finder_range=(1e-8, 10.0)),
    # fifth hold-out, committed before any of it was measured (2026-11-29), rule unchanged: two more optimizers
    # (RAdam, Adamax), a recurrent model with SGD momentum, a residual BatchNorm CNN with SGD momentum and batch
    # 64, a deep MLP regression with AdamW
    Task("transformer_radam", "transformer", "sequences", "ce", "radam", steps=200),
    Task("cnn_bn_adamax", "cnn_bn", "images", "ce", "adamax", steps=150),
    Task("gru_sgdm", "gru", "sequences", "ce", "sgd_momentum", steps=200, finder_range=(1e-8, 10.0)),
    Task(
        "resnet_bn_sgdm_b64",
        "resnet_bn",
        "images",
        "ce",
        "sgd_momentum",
        steps=150,
        batch_size=64,
        finder_range=(1e-8, 10.0),
    ),
    Task("mlp_deep_adamw_mse", "mlp_deep", "regression", "mse", "adamw", steps=200),
)

TASKS_BY_NAME = {task.name: task for task in TASKS}

# How the default rule's knobs were set: chosen on DESIGN, checked on CONFIRM; HOLDOUT was added after the first
# version of the rule (valley floor), NEW_HOLDOUT after the second (rise onset) -- neither tuned anything.
DESIGN = tuple(task.name for task in TASKS[:12:2])
CONFIRM = tuple(task.name for task in TASKS[1:12:2])
HOLDOUT = tuple(task.name for task in TASKS[12:15])
NEW_HOLDOUT = tuple(task.name for task in TASKS[15:18])
THIRD_HOLDOUT = tuple(task.name for task in TASKS[18:22])
FOURTH_HOLDOUT = tuple(task.name for task in TASKS[22:27])
FIFTH_HOLDOUT = tuple(task.name for task in TASKS[27:])
GROUPS = {
    "design": DESIGN,
    "confirm": CONFIRM,
    "holdout": HOLDOUT,
    "new holdout": NEW_HOLDOUT,
    "third holdout": THIRD_HOLDOUT,
    "fourth holdout": FOURTH_HOLDOUT,
    "fifth holdout": FIFTH_HOLDOUT,
}


# ---------------------------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class TaskData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor


def _teacher(generator: torch.Generator, d_in: int, d_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    w1 = torch.randn(d_in, 32, generator=generator) / math.sqrt(d_in)
    w2 = torch.randn(32, d_out, generator=generator) / math.sqrt(32)
    return w1, w2


def make_data(task: Task, n_train: int = 4096, n_eval: int = 1024) -> TaskData:
    """Synthetic data, the same for every seed of a task (seeded by the task name).

    Enough samples that a budget is 1-2 epochs: the best constant LR is then set by optimisation (what a range
    test can see), not by how much a high LR overfits a small training set (which no range test can see).
    """
    generator = torch.Generator().manual_seed(int(hashlib.sha256(task.name.encode()).hexdigest()[:8], 16))
    n = n_train + n_eval
    if task.data in ("blobs", "regression"):
        x = torch.randn(n, 16, generator=generator)
        w1, w2 = _teacher(generator, 16, 4 if task.data == "blobs" else 1)
        out = torch.tanh(x @ w1 * 2) @ w2
        if task.data == "blobs":
            y = (out + 0.3 * torch.randn(out.shape, generator=generator)).argmax(dim=1)
        else:
            y = out + 0.1 * torch.randn(out.shape, generator=generator)
            y = y / y.std()
    elif task.data == "images":
        templates = torch.randn(4, 1, 12, 12, generator=generator)
        y = torch.randint(0, 4, (n,), generator=generator)
        shifts = torch.randint(-2, 3, (n, 2), generator=generator)
        x = torch.stack(
            [torch.roll(templates[c], (int(s[0]), int(s[1])), dims=(1, 2)) for c, s in zip(y, shifts, strict=True)]
        )
        x = x + 1.0 * torch.randn(x.shape, generator=generator)
    elif task.data == "sequences":
        x = torch.randint(0, 16, (n, 12), generator=generator)
        # label: which of tokens 0..3 is most frequent (ties -> lowest), a counting task attention can solve
        counts = torch.stack([(x == t).sum(dim=1) for t in range(4)], dim=1)
        y = (counts.float() + 0.01 * torch.arange(4, 0, -1)).argmax(dim=1)
    else:
        raise ValueError(f"unknown data kind {task.data!r}")
    if x.is_floating_point():
        x = x * task.input_scale
    return TaskData(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


# ---------------------------------------------------------------------------------------------------------------
# models, optimizers, losses


class TinyTransformer(nn.Module):
    """Embedding + learned positions, one encoder layer, mean pooling, linear head."""

    def __init__(self, vocab: int = 16, length: int = 12, width: int = 32, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(1, length, width))
        self.encoder = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(width, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens) + self.position).mean(dim=1))


class TinyGRU(nn.Module):
    """Embedding, one GRU layer, the last hidden state into a linear head."""

    def __init__(self, vocab: int = 16, width: int = 32, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(self.embed(tokens))
        return self.head(last[-1])


class TinyResNet(nn.Module):
    """A BatchNorm stem and two residual blocks (conv-BN-ReLU-conv-BN plus identity), pooled into a head."""

    def __init__(self, width: int = 16, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(width, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.BatchNorm2d(width),
            )
            for _ in range(2)
        )
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = torch.relu(x + block(x))
        return self.head(x.mean(dim=(2, 3)))


def make_model(task: Task, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    out = 1 if task.loss == "mse" else 4
    if task.model == "linear":
        return nn.Linear(16, out)
    if task.model == "mlp":
        return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, out))
    if task.model == "mlp_deep":  # 4 hidden layers of 128
        layers: list[nn.Module] = [nn.Linear(16, 128), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Linear(128, 128), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(128, out))
    if task.model == "cnn_bn":
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(16, out),
        )  # fmt: skip
    if task.model == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(16, out),
        )  # fmt: skip
    if task.model == "transformer":
        return TinyTransformer(classes=out)
    if task.model == "gru":
        return TinyGRU(classes=out)
    if task.model == "mlp_bn":
        return nn.Sequential(
            nn.Linear(16, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, out),
        )  # fmt: skip
    if task.model == "cnn_gn":  # the cnn_bn layout with GroupNorm (4 groups) in place of BatchNorm
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(16, out),
        )  # fmt: skip
    if task.model == "resnet_bn":
        return TinyResNet(classes=out)
    raise ValueError(f"unknown model {task.model!r}")


def make_optimizer(task: Task, params: Iterator[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if task.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if task.optimizer == "sgd_momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if task.optimizer == "sgd_nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    if task.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    if task.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if task.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    if task.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if task.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=lr)
    if task.optimizer == "radam":
        return torch.optim.RAdam(params, lr=lr)
    if task.optimizer == "adamax":
        return torch.optim.Adamax(params, lr=lr)
    raise ValueError(f"unknown optimizer {task.optimizer!r}")


def make_loss(task: Task) -> nn.Module:
    if task.loss == "ce_smooth":
        return nn.CrossEntropyLoss(label_smoothing=0.1)
    return nn.CrossEntropyLoss() if task.loss == "ce" else nn.MSELoss()


def make_loader(task: Task, data: TaskData, seed: int) -> DataLoader:
    """The training loader every finder gets (shuffled, seeded)."""
    generator = torch.Generator().manual_seed(seed)
    dataset = TensorDataset(data.x_train, data.y_train)
    return DataLoader(dataset, batch_size=task.batch_size, shuffle=True, drop_last=True, generator=generator)


def cycle(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches, re-iterating (and so re-shuffling) the loader at each epoch end."""
    for _ in itertools.count():
        yield from loader


# ---------------------------------------------------------------------------------------------------------------
# training


@torch.no_grad()
def precise_batchnorm(model: nn.Module, data: TaskData) -> None:
    """Recomputes BatchNorm running statistics as exact averages over the training set ("precise BN").

    The running averages trail the weights by ~10 steps; after a high-LR run that lag alone can double the held-out
    loss of one seed but not another, which would make the oracle measure BN lag rather than the LR.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    for start in range(0, len(data.x_train), 256):
        model(data.x_train[start : start + 256])


@torch.no_grad()
def evaluate(task: Task, model: nn.Module, data: TaskData) -> float:
    """Held-out loss (model in eval mode, BN statistics made precise); inf when it is not finite."""
    was_training = model.training
    precise_batchnorm(model, data)
    model.eval()
    loss = float(make_loss(task)(model(data.x_eval), data.y_eval))
    model.train(was_training)
    return loss if math.isfinite(loss) else math.inf


def untrained_loss(task: Task, data: TaskData, seed: int) -> float:
    return evaluate(task, make_model(task, seed), data)


def train_constant(task: Task, data: TaskData, lr: float, seed: int) -> float:
    """Trains a fresh model (init seed ``seed``) for ``task.steps`` steps at constant ``lr``; held-out loss or inf."""
    model = make_model(task, seed)
    optimizer = make_optimizer(task, model.parameters(), lr)
    loss_fn = make_loss(task)
    batches = cycle(make_loader(task, data, seed))
    model.train()
    for _ in range(task.steps):
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            return math.inf
        loss.backward()
        optimizer.step()
    return evaluate(task, model, data)


def grid_lrs(task: Task, points_per_decade: int = 3) -> list[float]:
    lo, hi = (math.log10(v) for v in task.grid)
    count = round((hi - lo) * points_per_decade) + 1
    return [10 ** (lo + (hi - lo) * i / (count - 1)) for i in range(count)]
