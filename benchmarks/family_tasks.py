"""Task families the other LR benchmarks do not share: other data generators, architectures, losses and budgets.

``lr_tasks`` and ``horizon_tasks`` draw from four generators (blobs, a teacher-MLP regression, template images,
token-count sequences) and their models. The best LR's offset from what a range test reads differs by family more
than by horizon, so an LR rule fitted on those families carries their offset. Here each **family** is its own data
generator *and* architecture (and mostly its own loss), with three tasks per family: a short constant-LR budget
(200-300 steps), a long constant one (1500-3000 steps) and OneCycle (2000-2500 steps, ``max_lr = 3 x`` the base LR,
the app's ``SchedulerConfig`` defaults as in ``horizon_tasks.onecycle``), the optimizers spread over the families.

Design families (an LR rule may be designed on them): ``spirals`` (interleaved 2-D spirals, SiLU MLP, CE), ``bow``
(topic-model documents as sparse token ids, ``nn.EmbeddingBag`` + MLP head, CE), ``autoencoder`` (a 3-D manifold
in 48 dims, GELU autoencoder with a 4-unit bottleneck, MSE), ``poisson`` (counts from a log-linear teacher, ELU
MLP, ``PoissonNLLLoss(log_input=True)``). Hold-out families (committed before anything was measured on them; never
used to tune anything): ``forecast`` (sums of sinusoids, next 8 values from 48, Conv1d net, SmoothL1), ``multilabel``
(tags from a sparse teacher, MLP with LayerNorm, BCEWithLogits), ``charlm`` (an order-2 Markov chain, LSTM, CE per
token), ``tabular`` (categorical embeddings + numeric columns, residual LayerNorm MLP, CE).

Every task's data is drawn once from its name (the same for every seed); model init and batch order come from the
seed. The oracle (``benchmarks.family_oracle``) trains each task on the quarter-decade lattice of ``lr_horizon``
and caches it; ``gap``/``best_lr`` read that cache. Run ``python -m benchmarks.family_tasks --oracle [--split
design|holdout] [--tasks a,b]`` to compute it, without ``--oracle`` to print the cached table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from benchmarks import lr_tasks
from benchmarks.lr_tasks import TaskData

# Bump when the way these tasks are built or trained changes, so cached oracles are recomputed.
FAMILY_CODE_VERSION = 1
ADAPTIVE_LATTICE = (-18, -6)  # lr = 10**(k/4): ~3.2e-5 .. 3.2e-2, widened by the oracle while the best is at an edge
SGD_LATTICE = (-12, 0)  # 1e-3 .. 1
ADAGRAD_LATTICE = (-14, -2)  # ~3e-4 .. 0.3
SGD_FINDER = (1e-8, 10.0)
CLASSES = {"spirals": 4, "bow": 6, "charlm": 12, "tabular": 3}  # single-label classification families


@dataclass(frozen=True)
class FamilyTask:
    """One task of a family; ``lattice`` is the oracle's first window in quarter-decades (see ``lr_horizon``)."""

    name: str
    family: str  # spirals | bow | autoencoder | poisson | forecast | multilabel | charlm | tabular
    split: str  # design | holdout
    group: str  # short | long | onecycle
    optimizer: str  # an lr_tasks optimizer: sgd | sgd_momentum | adam | adamw | rmsprop | adagrad | nadam
    steps: int  # training budget in optimizer steps
    schedule: str = "constant"  # constant | onecycle
    batch_size: int = 32
    n_train: int = 32768
    n_eval: int = 2048
    finder_range: tuple[float, float] = (1e-8, 1.0)
    num_training: int = 100
    lattice: tuple[int, int] = ADAPTIVE_LATTICE
    coarse: int = 2  # quarter-decades between first-pass lattice points (then the 0.25-decade neighbours of the best)
    oracle_seeds: int = 2

    def key(self) -> str:
        """Hash of the task definition (and the code version), keying the oracle cache."""
        text = json.dumps({"task": asdict(self), "version": FAMILY_CODE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def classification(self) -> bool:
        """Single-label classification (accuracy is recorded next to the loss)."""
        return self.family in CLASSES

    @property
    def chance(self) -> float | None:
        """Accuracy of a uniform guess (what a diverged run scores), None when not classification."""
        return 1 / CLASSES[self.family] if self.family in CLASSES else None


def _family(family: str, split: str, short: tuple, long: tuple, onecycle: tuple) -> tuple[FamilyTask, ...]:
    """The three tasks of a family from (optimizer, steps, lattice[, batch]) per group."""
    tasks = []
    for group, (optimizer, steps, lattice, *batch) in (("short", short), ("long", long), ("onecycle", onecycle)):
        tasks.append(
            FamilyTask(
                f"{family}_{group}_{optimizer}", family, split, group, optimizer, steps,
                schedule="onecycle" if group == "onecycle" else "constant", batch_size=batch[0] if batch else 32,
                finder_range=SGD_FINDER if optimizer.startswith("sgd") else (1e-8, 1.0), lattice=lattice,
            )
        )  # fmt: skip
    return tuple(tasks)


A, S, G = ADAPTIVE_LATTICE, SGD_LATTICE, ADAGRAD_LATTICE
# OneCycle cycles momentum (the app's cycle_momentum): only optimizers with momentum or betas run it here.
DESIGN_TASKS = (
    *_family("spirals", "design", ("sgd_momentum", 300, S), ("adam", 3000, A), ("nadam", 2000, A, 64)),
    *_family("bow", "design", ("adagrad", 250, G), ("rmsprop", 2000, A), ("sgd_momentum", 2000, S)),
    *_family("autoencoder", "design", ("adam", 300, A, 64), ("sgd_momentum", 3000, S), ("adamw", 2500, A)),
    *_family("poisson", "design", ("sgd", 300, S), ("adamw", 2000, A, 64), ("adam", 2000, A)),
)
# Hold-out families, committed before anything was measured on them: never used to tune anything.
HOLDOUT_TASKS = (
    *_family("forecast", "holdout", ("rmsprop", 250, A), ("sgd_momentum", 3000, S), ("adamw", 2500, A, 64)),
    *_family("multilabel", "holdout", ("adamw", 300, A), ("sgd", 2000, S, 64), ("nadam", 2500, A)),
    *_family("charlm", "holdout", ("adam", 250, A), ("rmsprop", 1500, A), ("sgd_momentum", 2000, S)),
    *_family("tabular", "holdout", ("adagrad", 300, G, 64), ("adam", 3000, A), ("sgd_momentum", 2500, S)),
)
FAMILY_TASKS: tuple[FamilyTask, ...] = DESIGN_TASKS + HOLDOUT_TASKS
DESIGN_FAMILIES = ("spirals", "bow", "autoencoder", "poisson")
HOLDOUT_FAMILIES = ("forecast", "multilabel", "charlm", "tabular")
TASKS_BY_NAME = {t.name: t for t in FAMILY_TASKS}


# ---------------------------------------------------------------------------------------------------------------
# data: one generator per family, numpy-seeded by the task name, returned as (inputs, targets) of n samples


def _spirals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """4 interleaved arms of one turn each, radius 0.1-1.1, Gaussian noise 0.04, the plane scaled by 2."""
    arms, t = rng.integers(0, 4, n), rng.random(n)
    angle = arms * (2 * math.pi / 4) + 2 * math.pi * t
    radius = 0.1 + t
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1) + 0.04 * rng.standard_normal((n, 2))
    return (2 * x).astype(np.float32), arms


def _bow(rng: np.random.Generator, n: int, vocab: int = 400, topics: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Documents of 6-30 tokens (ids 1..vocab, 0 pads) from a topic model; the label is the dominant topic.

    Sparse topics (Dirichlet 0.05) mixed half-half with a random mixture of the other topics, plus 30 % of the
    tokens from a shared Zipf background (the common words every class uses).
    """
    laws = np.concatenate([rng.dirichlet(np.full(vocab, 0.05), size=topics), 1.0 / np.arange(1, vocab + 1)[None]])
    cdfs = laws.cumsum(axis=1) / laws.sum(axis=1, keepdims=True)  # topics, then the background
    labels = rng.integers(0, topics, n)
    theta = 0.5 * np.eye(topics)[labels] + 0.5 * rng.dirichlet(np.full(topics, 0.3), size=n)
    mixture = np.concatenate([0.7 * theta, np.full((n, 1), 0.3)], axis=1).cumsum(axis=1)
    source = (mixture[:, None, :] < rng.random((n, 30, 1))).sum(axis=2).clip(max=topics)  # each token's law
    draws = rng.random((n, 30))
    tokens = np.zeros((n, 30), dtype=np.int64)
    for c in range(topics + 1):  # inverse-CDF sampling, one law at a time
        tokens[source == c] = 1 + np.searchsorted(cdfs[c], draws[source == c]).clip(max=vocab - 1)
    tokens[np.arange(30)[None] >= rng.integers(6, 31, (n, 1))] = 0  # documents of 6-30 tokens, 0 pads
    return tokens, labels


def _autoencoder(rng: np.random.Generator, n: int, dim: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Points on a curved 3-D manifold (sinusoidal features of a uniform latent) embedded in ``dim`` dimensions."""
    z = rng.uniform(-1, 1, (n, 3))
    a1, b1 = rng.standard_normal((3, 16)) * 1.5, rng.uniform(0, 2 * math.pi, 16)
    x = np.sin(z @ a1 + b1) @ (rng.standard_normal((16, dim)) / 4)
    x = (x - x.mean(axis=0)) / x.std(axis=0) + 0.05 * rng.standard_normal((n, dim))
    return x.astype(np.float32), x.astype(np.float32)


def _poisson(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of 3 outputs with log-rate = a tanh teacher of 12 Gaussian inputs, centred, std 1.5 per output (the
    inputs explain most of the loss a model can remove, not only the mean rate)."""
    x = rng.standard_normal((n, 12))
    hidden = np.tanh(x @ (rng.standard_normal((12, 16)) / math.sqrt(12) * 1.5))
    signal = hidden @ rng.standard_normal((16, 3))
    log_rate = 1.5 * (signal - signal.mean(axis=0)) / signal.std(axis=0)
    return x.astype(np.float32), rng.poisson(np.exp(log_rate)).astype(np.float32)


def _forecast(rng: np.random.Generator, n: int, window: int = 48, ahead: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Sums of 3 sinusoids (0.02-0.15 cycles/step, amplitude 0.3-1) + noise 0.1: the last 48 values -> the next 8."""
    t = np.arange(window + ahead)
    freq, amp = rng.uniform(0.02, 0.15, (n, 3, 1)), rng.uniform(0.3, 1.0, (n, 3, 1))
    phase = rng.uniform(0, 2 * math.pi, (n, 3, 1))
    series = (amp * np.sin(2 * math.pi * freq * t + phase)).sum(axis=1) + 0.1 * rng.standard_normal((n, len(t)))
    series = series.astype(np.float32)
    return series[:, None, :window], series[:, window:]


def _multilabel(rng: np.random.Generator, n: int, dim: int = 24, tags: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Each tag depends on 3 of 24 inputs (a linear part and one product); base rates 5-40 %; Bernoulli labels."""
    x = rng.standard_normal((n, dim))
    logits = np.empty((n, tags))
    for j in range(tags):
        a, b, c = rng.choice(dim, 3, replace=False)
        w = rng.standard_normal(3)
        rate = rng.uniform(0.05, 0.4)
        logits[:, j] = w[0] * x[:, a] + w[1] * x[:, b] + w[2] * x[:, c] + 0.8 * x[:, a] * x[:, b]
        logits[:, j] += math.log(rate / (1 - rate)) - np.median(logits[:, j])
    y = rng.random((n, tags)) < 1 / (1 + np.exp(-2 * logits))
    return x.astype(np.float32), y.astype(np.float32)


def _charlm(rng: np.random.Generator, n: int, vocab: int = 12, length: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of an order-2 Markov chain (each pair's next-token law Dirichlet 0.2); targets are shifted by one."""
    table = rng.dirichlet(np.full(vocab, 0.2), size=(vocab, vocab)).cumsum(axis=2)
    seq = np.zeros((n, length + 1), dtype=np.int64)
    seq[:, :2] = rng.integers(0, vocab, (n, 2))
    for i in range(2, length + 1):
        cdf = table[seq[:, i - 2], seq[:, i - 1]]
        seq[:, i] = np.minimum((cdf < rng.random((n, 1)) * cdf[:, -1:]).sum(axis=1), vocab - 1)
    return seq[:, :-1], seq[:, 1:]


CARDINALITIES = (4, 10, 25, 6)
NUMERIC = 6


def _tabular(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """4 categorical columns (codes stored as floats first) + 6 standardised numeric ones (Gaussian, log-normal,
    uniform); 3 classes from per-category effects, a tanh teacher on the numbers and one category x number term."""
    cats = np.stack([rng.integers(0, c, n) for c in CARDINALITIES], axis=1)
    num = np.concatenate([rng.standard_normal((n, 2)), rng.lognormal(0, 1, (n, 2)), rng.uniform(-3, 3, (n, 2))], axis=1)
    num = (num - num.mean(axis=0)) / num.std(axis=0)
    logits = sum(0.8 * rng.standard_normal((c, 3))[cats[:, i]] for i, c in enumerate(CARDINALITIES))
    logits = logits + np.tanh(num @ rng.standard_normal((NUMERIC, 8))) @ rng.standard_normal((8, 3))
    logits = logits + rng.choice([-1.0, 1.0], (CARDINALITIES[0], 3))[cats[:, 0]] * num[:, :1]
    labels = (logits + 0.5 * rng.gumbel(size=logits.shape)).argmax(axis=1)
    return np.concatenate([cats, num], axis=1).astype(np.float32), labels


GENERATORS = {
    "spirals": _spirals, "bow": _bow, "autoencoder": _autoencoder, "poisson": _poisson,
    "forecast": _forecast, "multilabel": _multilabel, "charlm": _charlm, "tabular": _tabular,
}  # fmt: skip


def make_data(task: FamilyTask) -> TaskData:
    """The task's data, the same for every seed (numpy-seeded by the task name)."""
    rng = np.random.default_rng(int(hashlib.sha256(task.name.encode()).hexdigest()[:8], 16))
    x, y = GENERATORS[task.family](rng, task.n_train + task.n_eval)
    x, y = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
    return TaskData(x[: task.n_train], y[: task.n_train], x[task.n_train :], y[task.n_train :])


def make_loader(task: FamilyTask, data: TaskData, seed: int) -> DataLoader:
    """Shuffled (seeded) batches of ``(inputs, targets)``, drop_last; indexed a batch at a time (fast on CPU)."""
    sampler = BatchSampler(
        RandomSampler(data.x_train, generator=torch.Generator().manual_seed(seed)), task.batch_size, drop_last=True
    )
    return DataLoader(TensorDataset(data.x_train, data.y_train), sampler=sampler, batch_size=None)


# ---------------------------------------------------------------------------------------------------------------
# models and losses


class BagOfWords(nn.Module):
    """Mean of token embeddings (padding id 0 left out), an MLP head."""

    def __init__(self, vocab: int = 400, width: int = 32, classes: int = 6) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab + 1, width, mode="mean", padding_idx=0)
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(tokens))


class CharLSTM(nn.Module):
    """Embedding, one LSTM layer, a per-position head: logits of shape (batch, length, vocab)."""

    def __init__(self, vocab: int = 12, embed: int = 16, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, width, batch_first=True)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0])


class TabularResNet(nn.Module):
    """Category embeddings (4 each) next to the numeric columns, a stem, 2 pre-LayerNorm residual blocks, a head."""

    def __init__(self, width: int = 48, classes: int = 3) -> None:
        super().__init__()
        self.embeds = nn.ModuleList(nn.Embedding(c, 4) for c in CARDINALITIES)
        self.stem = nn.Linear(4 * len(CARDINALITIES) + NUMERIC, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
            for _ in range(2)
        )
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cats = x[:, : len(CARDINALITIES)].long()
        parts = [embed(cats[:, i]) for i, embed in enumerate(self.embeds)]
        h = self.stem(torch.cat([*parts, x[:, len(CARDINALITIES) :]], dim=1))
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def _mlp(sizes: tuple[int, ...], act: type[nn.Module], norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.LayerNorm(b), act()] if norm else [act()]
    return nn.Sequential(*layers)


def _forecaster() -> nn.Sequential:
    """Two 5-tap convolutions (the second dilated), a 1x1 down to 4 channels, a linear read-out of the 8 values."""
    return nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2), nn.ReLU(), nn.Conv1d(16, 16, 5, padding=4, dilation=2), nn.ReLU(),
        nn.Conv1d(16, 4, 1), nn.Flatten(), nn.Linear(4 * 48, 8),
    )  # fmt: skip


def make_model(task: FamilyTask, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    builders = {
        "spirals": lambda: _mlp((2, 64, 64, 4), nn.SiLU),
        "bow": BagOfWords,
        "autoencoder": lambda: nn.Sequential(_mlp((48, 64, 4), nn.GELU), _mlp((4, 64, 48), nn.GELU)),
        "poisson": lambda: _mlp((12, 32, 32, 3), nn.ELU),
        "forecast": _forecaster,
        "multilabel": lambda: _mlp((24, 64, 64, 10), nn.GELU, norm=True),
        "charlm": CharLSTM,
        "tabular": TabularResNet,
    }
    return builders[task.family]()


class TokenCrossEntropy(nn.Module):
    """Cross-entropy over every position: logits (batch, length, vocab) and targets (batch, length) flattened."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def make_loss(task: FamilyTask) -> nn.Module:
    if task.family in ("spirals", "bow", "tabular"):
        return nn.CrossEntropyLoss()
    losses = {
        "autoencoder": nn.MSELoss, "poisson": lambda: nn.PoissonNLLLoss(log_input=True),
        "forecast": lambda: nn.SmoothL1Loss(beta=0.5), "multilabel": nn.BCEWithLogitsLoss, "charlm": TokenCrossEntropy,
    }  # fmt: skip
    return losses[task.family]()


def make_optimizer(task: FamilyTask, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The task's optimizer at ``lr`` (``lr_tasks.make_optimizer``: AdamW with weight decay 0.01, SGD momentum 0.9)."""
    return lr_tasks.make_optimizer(task, model.parameters(), lr)  # type: ignore[arg-type]


def builders(task: FamilyTask):
    """``(data, make_model(seed), make_optimizer(model, lr=1e-3), make_loader(seed), loss_fn)``, as the LR benchmarks
    build a task (``lr_reading._builders``); ``make_optimizer`` also takes an ``lr``."""
    data = make_data(task)
    return (
        data,
        (lambda seed: make_model(task, seed)),
        (lambda model, lr=1e-3: make_optimizer(task, model, lr)),
        (lambda seed: make_loader(task, data, seed)),
        make_loss(task),
    )


def gap(task: FamilyTask, lr: float | None, oracle=None) -> float:
    """Normalised gap of base LR ``lr`` to the cached grid oracle (0 = the grid's best, 1 = useless); no training.
    ``oracle``: a ``family_oracle.FamilyLattice`` (default: the committed cache). LookupError when it lacks ``task``."""
    from benchmarks.family_oracle import gap as oracle_gap

    return oracle_gap(task, lr, oracle)


def best_lr(task: FamilyTask, oracle=None) -> float:
    """The grid oracle's best base LR for ``task`` (from the cache; no training); LookupError when it is missing."""
    from benchmarks.family_oracle import best_lr as oracle_best_lr

    return oracle_best_lr(task, oracle)


if __name__ == "__main__":
    from benchmarks.family_oracle import main

    main()
