"""Fine-tuning tasks with pretrained starts the benchmark makes itself: pretrain on one task, new head, fine-tune on
another. No downloads: every backbone is pretrained here, on CPU, and cached under ``.cache/bench_finetune``.

Each **family** is a data generator with a *source* task (pretraining) and a *target* task (fine-tuning) that share
structure a backbone can carry over, and an architecture:

- ``cnn`` (design): "parts" images, 32 px: every class is 3 of 12 shared 5x5 strokes at class-specific places
  (source: 10 classes, target: 6 other compositions of the same strokes), shifted and noisy; a BatchNorm CNN.
- ``vit`` (design): the same parts images at 64 px; a small timm ViT (``vit_tiny_patch16_224`` made 3 blocks deep,
  48 wide, 8-px patches: ``timm.create_model`` with timm's own arguments).
- ``mlp`` (design): 24-d Gaussian inputs through a shared random tanh layer; source and target labels are two
  different read-outs of it (32 and 5 classes); a ReLU MLP.
- ``gru`` (hold-out): token sequences from Markov chains that share one base transition matrix and differ by class;
  the target's chains are new ones; an embedding + GRU.
- ``convnext`` (hold-out): 32-px gratings, class = orientation x frequency (source and target use other angles and
  frequencies); timm's ConvNeXt made small (``convnext_atto`` with 4 stages of 1-2 blocks, 16-64 wide: LayerNorm,
  GELU, depthwise 7x7 convolutions).
- ``tcn`` (hold-out of ``lr_finetune_probe`` only, committed with it before anything was measured on it): 1-D
  signals of 64 samples, each class two of six shared frequencies (source: 8 pairs, target: 5 other pairs), random
  phases, noisy; a dilated Conv1d stack with GroupNorm and GELU. Not in ``TASKS`` (``lr_finetune`` never ran it).

A **task** fine-tunes one family's pretrained backbone on its target data in one **phase**: ``head`` (the backbone
frozen, its BatchNorm statistics still training, as the app's ``freeze_epochs`` phase does; a new head from the
seed) or ``whole`` (every parameter; the start is either ``pretrained`` with a new head, or ``head_trained``: the
head first trained 150 steps with the backbone frozen, AdamW 1e-3 at seed 0, as the app's second phase starts). A
whole-model task may keep **per-group LRs**: the backbone at ``backbone_lr_scale`` x the head's LR, or timm's layer
decay (``timm.optim.param_groups_layer_decay``) for the ViT; the head's group is the first, so the LR a task is
trained at (and the finders suggest) is the head's and every other group keeps its ratio to it. ``shots`` makes a
few-shot target set (that many examples per class). Schedules: constant LR, or OneCycle peaking at 3 x the base LR
(the app's ``max_lr_factor``; ``horizon_tasks.onecycle``'s settings, one ``max_lr`` per group).

Design tasks (the suggestion may be designed on them) and hold-out tasks (the ``gru`` and ``convnext`` families,
committed before anything was measured on them) are listed below. The grid oracle (``FinetuneLattice``: the
quarter-decade lattice of ``lr_horizon``, widened at the edges as ``family_oracle`` does; 2 training seeds per
point) is cached in ``benchmarks/results/finetune_oracle_cache.json``.

Run: ``python -m benchmarks.finetune_tasks --oracle [--split design|holdout] [--tasks a,b]`` computes the missing
oracle points and prints the table; without ``--oracle`` it prints the cached table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks import horizon_tasks, lr_tasks
from benchmarks.common import RESULTS
from benchmarks.family_oracle import FamilyLattice, table
from benchmarks.lr_horizon import _mean
from benchmarks.lr_tasks import TaskData

log = logging.getLogger("finetune_tasks")
FINETUNE_CODE_VERSION = 1  # bump when tasks, data, models, pretraining or training change
REPO = Path(__file__).resolve().parent.parent
WEIGHTS_CACHE = REPO / ".cache" / "bench_finetune"  # pretrained and head-trained starts (gitignored)
CACHE_PATH = RESULTS / "finetune_oracle_cache.json"
ADAPTIVE_LATTICE = (-20, -6)  # lr = 10**(k/4): 1e-5 .. 3.2e-2, widened while the best or an edge needs it
SGD_LATTICE = (-14, 0)  # ~3.2e-4 .. 1
HEAD_START_STEPS = 150  # the head-trained start: the head alone, AdamW 1e-3, seed 0
HEAD_START_LR = 1e-3
EVAL_CHUNK = 512


@dataclass(frozen=True)
class FinetuneTask:
    """One fine-tuning task; ``lattice`` is the oracle's first window in quarter-decades (see ``lr_horizon``)."""

    name: str
    family: str  # cnn | vit | mlp | gru | convnext
    split: str  # design | holdout
    phase: str  # head | whole
    optimizer: str  # an lr_tasks optimizer
    steps: int
    schedule: str = "constant"  # constant | onecycle
    start: str = "pretrained"  # pretrained (a new head) | head_trained (whole phase only)
    shots: int | None = None  # examples per class in the target training set; None: the full set
    batch_size: int = 32
    backbone_lr_scale: float = 1.0
    layer_decay: float | None = None  # timm layer decay of the backbone (vit), instead of backbone_lr_scale
    finder_range: tuple[float, float] = (1e-7, 1.0)
    num_training: int = 100
    lattice: tuple[int, int] = ADAPTIVE_LATTICE
    coarse: int = 2
    oracle_seeds: int = 2

    def key(self) -> str:
        text = json.dumps({"task": asdict(self), "version": FINETUNE_CODE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def group(self) -> str:
        return self.phase

    classification = True

    @property
    def chance(self) -> float:
        return 1 / TARGET_CLASSES[self.family]


SOURCE_CLASSES = {"cnn": 10, "vit": 10, "mlp": 32, "gru": 8, "convnext": 8, "tcn": 8}
TARGET_CLASSES = {"cnn": 6, "vit": 6, "mlp": 5, "gru": 5, "convnext": 8, "tcn": 5}
PRETRAIN_STEPS = {"cnn": 1500, "vit": 1500, "mlp": 1500, "gru": 1500, "convnext": 1500, "tcn": 1500}
SGD = {"finder_range": (1e-6, 10.0), "lattice": SGD_LATTICE}

DESIGN_TASKS = (
    FinetuneTask("cnn_head_adamw", "cnn", "design", "head", "adamw", 300),
    FinetuneTask("cnn_whole_sgdm_onecycle", "cnn", "design", "whole", "sgd_momentum", 600, "onecycle",
                 "head_trained", backbone_lr_scale=0.1, **SGD),
    FinetuneTask("cnn_fewshot_whole_adam", "cnn", "design", "whole", "adam", 150, start="head_trained", shots=10,
                 batch_size=16),
    FinetuneTask("vit_head_adamw_onecycle", "vit", "design", "head", "adamw", 300, "onecycle"),
    FinetuneTask("vit_whole_adamw", "vit", "design", "whole", "adamw", 400, start="head_trained", layer_decay=0.75),
    FinetuneTask("mlp_whole_adam", "mlp", "design", "whole", "adam", 600),
    FinetuneTask("mlp_head_sgd", "mlp", "design", "head", "sgd", 300, **SGD),
)  # fmt: skip
# Hold-out families, committed before anything was measured on them: never used to tune anything.
HOLDOUT_TASKS = (
    FinetuneTask("gru_whole_adam_onecycle", "gru", "holdout", "whole", "adam", 500, "onecycle"),
    FinetuneTask("convnext_head_sgdm", "convnext", "holdout", "head", "sgd_momentum", 300, **SGD),
    FinetuneTask("convnext_fewshot_whole_adamw", "convnext", "holdout", "whole", "adamw", 200, start="head_trained",
                 shots=12, batch_size=16, backbone_lr_scale=0.1),
)  # fmt: skip
TASKS: tuple[FinetuneTask, ...] = DESIGN_TASKS + HOLDOUT_TASKS
# The hold-out of the held-out-probe question (benchmarks/lr_finetune_probe.py), committed with it before anything
# was measured on it; not in TASKS: lr_finetune's tables stay as they were measured.
PROBE_HOLDOUT_TASKS = (
    FinetuneTask("tcn_fewshot_whole_nadam", "tcn", "holdout", "whole", "nadam", 200, start="head_trained", shots=8,
                 batch_size=16, backbone_lr_scale=0.1),
    FinetuneTask("tcn_whole_rmsprop_onecycle", "tcn", "holdout", "whole", "rmsprop", 400, "onecycle",
                 backbone_lr_scale=0.3),
    FinetuneTask("tcn_head_adam", "tcn", "holdout", "head", "adam", 300),
)  # fmt: skip
TASKS_BY_NAME = {t.name: t for t in TASKS + PROBE_HOLDOUT_TASKS}
DESIGN_FAMILIES = ("cnn", "vit", "mlp")
HOLDOUT_FAMILIES = ("gru", "convnext")


# ---------------------------------------------------------------------------------------------------------------
# data


def _generator(name: str) -> torch.Generator:
    return torch.Generator().manual_seed(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))


def _parts(side: str, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Parts images of ``side`` (source | target) upsampled to ``size`` px: shared strokes, composed per class."""
    strokes = torch.randn(12, 5, 5, generator=_generator("parts-strokes"))
    g = _generator(f"parts-{side}")
    classes = SOURCE_CLASSES["cnn"] if side == "source" else TARGET_CLASSES["cnn"]
    templates = torch.zeros(classes, 16, 16)
    for c in range(classes):
        for s in torch.randperm(12, generator=g)[:3].tolist():
            r, q = torch.randint(0, 12, (2,), generator=g).tolist()
            templates[c, r : r + 5, q : q + 5] += strokes[s]
    y = torch.randint(0, classes, (n,), generator=g)
    shifts = torch.randint(-2, 3, (n, 2), generator=g).tolist()
    x = torch.stack([torch.roll(templates[c], tuple(s), dims=(0, 1)) for c, s in zip(y.tolist(), shifts, strict=True)])
    x = (x + 0.9 * torch.randn(x.shape, generator=g)).unsqueeze(1)
    return F.interpolate(x, size=size, mode="nearest"), y


def _features(side: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    shared = torch.randn(24, 64, generator=_generator("features-shared")) / math.sqrt(24)
    g = _generator(f"features-{side}")
    classes = SOURCE_CLASSES["mlp"] if side == "source" else TARGET_CLASSES["mlp"]
    readout = torch.randn(64, classes, generator=g) / 8
    x = torch.randn(n, 24, generator=g)
    logits = torch.tanh(1.5 * x @ shared) @ readout
    return x, (logits / logits.std() + 0.3 * torch.randn(logits.shape, generator=g)).argmax(dim=1)


def _chains(side: str, n: int, vocab: int = 16, length: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    base = 1.5 * torch.randn(vocab, vocab, generator=_generator("chains-base"))
    g = _generator(f"chains-{side}")
    classes = SOURCE_CLASSES["gru"] if side == "source" else TARGET_CLASSES["gru"]
    logits = base + 1.2 * torch.randn(classes, vocab, vocab, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    tokens = [torch.randint(0, vocab, (n,), generator=g)]
    for _ in range(length - 1):
        probs = torch.softmax(logits[y, tokens[-1]], dim=-1)
        tokens.append(torch.multinomial(probs, 1, generator=g).squeeze(1))
    return torch.stack(tokens, dim=1), y


def _gratings(side: str, n: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = _generator(f"gratings-{side}")
    angles = (0.0, 45.0, 90.0, 135.0) if side == "source" else (22.5, 67.5, 112.5, 157.5)
    freqs = (2.0, 4.5) if side == "source" else (3.0, 6.0)
    combos = [(a, f) for a in angles for f in freqs]
    y = torch.randint(0, len(combos), (n,), generator=g)
    angle = torch.tensor([combos[c][0] for c in y.tolist()]) + 8 * (torch.rand(n, generator=g) - 0.5)
    freq = torch.tensor([combos[c][1] for c in y.tolist()]) * (1 + 0.2 * (torch.rand(n, generator=g) - 0.5))
    phase = 2 * math.pi * torch.rand(n, generator=g)
    grid = torch.arange(size, dtype=torch.float32) / size
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")
    theta = torch.deg2rad(angle)[:, None, None]
    wave = torch.cos(2 * math.pi * freq[:, None, None] * (cols * torch.cos(theta) + rows * torch.sin(theta))
                     + phase[:, None, None])  # fmt: skip
    x = wave + 1.0 * torch.randn(n, size, size, generator=g)
    return x.unsqueeze(1), y


def _waves(side: str, n: int, length: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    bank = (2.0, 3.1, 4.3, 5.6, 7.2, 9.0)  # cycles per signal, shared by both sides
    pairs = ((0, 1), (0, 3), (1, 4), (2, 5), (3, 4), (1, 2), (4, 5), (0, 5)) if side == "source" else (
        (0, 2), (1, 3), (2, 4), (3, 5), (0, 4))  # fmt: skip
    g = _generator(f"waves-{side}")
    y = torch.randint(0, len(pairs), (n,), generator=g)
    t = torch.arange(length, dtype=torch.float32) / length
    first = torch.tensor([bank[pairs[c][0]] for c in y.tolist()]) * (1 + 0.1 * (torch.rand(n, generator=g) - 0.5))
    second = torch.tensor([bank[pairs[c][1]] for c in y.tolist()]) * (1 + 0.1 * (torch.rand(n, generator=g) - 0.5))
    phases = 2 * math.pi * torch.rand(n, 2, generator=g)
    x = torch.sin(2 * math.pi * first[:, None] * t + phases[:, :1]) + 0.7 * torch.sin(
        2 * math.pi * second[:, None] * t + phases[:, 1:])  # fmt: skip
    return (x + 0.9 * torch.randn(n, length, generator=g)).unsqueeze(1), y


def side_data(family: str, side: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if family == "cnn":
        return _parts(side, n, 32)
    if family == "vit":
        return _parts(side, n, 64)
    if family == "mlp":
        return _features(side, n)
    if family == "gru":
        return _chains(side, n)
    if family == "convnext":
        return _gratings(side, n)
    if family == "tcn":
        return _waves(side, n)
    raise ValueError(f"unknown family {family!r}")


@cache
def target_data(family: str, shots: int | None, n_train: int = 4096, n_eval: int = 1024) -> TaskData:
    """The family's target data (the same for every task and seed); ``shots`` per class keeps a few-shot set."""
    x, y = side_data(family, "target", n_train + n_eval)
    x_train, y_train, x_eval, y_eval = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    if shots is not None:
        keep = torch.cat([torch.nonzero(y_train == c).flatten()[:shots] for c in range(TARGET_CLASSES[family])])
        x_train, y_train = x_train[keep], y_train[keep]
    return TaskData(x_train, y_train, x_eval, y_eval)


def make_data(task: FinetuneTask) -> TaskData:
    return target_data(task.family, task.shots)


# ---------------------------------------------------------------------------------------------------------------
# models


class Net(nn.Module):
    """A backbone (features) and a linear head: what is pretrained, frozen and re-headed."""

    def __init__(self, backbone: nn.Module, width: int, classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class GRUFeatures(nn.Module):
    def __init__(self, vocab: int = 16, width: int = 48) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.gru = nn.GRU(16, width, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(self.embed(x))[1][-1]


def _backbone(family: str) -> tuple[nn.Module, int]:
    import timm

    if family == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ), 64  # fmt: skip
    if family == "vit":
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, patch_size=8, embed_dim=48,
                                  depth=3, num_heads=3, in_chans=1, num_classes=0)  # fmt: skip
        return model, model.num_features
    if family == "mlp":
        return nn.Sequential(nn.Linear(24, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU()), 128
    if family == "gru":
        return GRUFeatures(), 48
    if family == "convnext":
        model = timm.create_model("convnext_atto", pretrained=False, depths=(1, 1, 2, 1), dims=(16, 32, 48, 64),
                                  in_chans=1, num_classes=0)  # fmt: skip
        return model, model.num_features
    if family == "tcn":
        return nn.Sequential(
            nn.Conv1d(1, 24, 7, padding=3), nn.GroupNorm(4, 24), nn.GELU(),
            nn.Conv1d(24, 32, 5, padding=4, dilation=2), nn.GroupNorm(4, 32), nn.GELU(),
            nn.Conv1d(32, 48, 5, padding=8, dilation=4), nn.GELU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        ), 48  # fmt: skip
    raise ValueError(f"unknown family {family!r}")


def _fresh(family: str, classes: int, seed: int) -> Net:
    torch.manual_seed(seed)
    backbone, width = _backbone(family)
    return Net(backbone, width, classes)


def _cached_state(path: Path, make: callable) -> dict:
    if path.exists():
        return torch.load(path, weights_only=True)
    state = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return state


def _pretrained_backbone(family: str) -> dict:
    """The family's backbone after ``PRETRAIN_STEPS`` of AdamW 2e-3 (OneCycle) on its source task, seed 0."""

    def make() -> dict:
        started = time.perf_counter()
        x, y = side_data(family, "source", 8192)
        model = _fresh(family, SOURCE_CLASSES[family], 0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
        steps = PRETRAIN_STEPS[family]
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
        _fit(model, optimizer, scheduler, x, y, steps, 64, seed=0)
        log.info("pretrained %s in %.0f s", family, time.perf_counter() - started)
        return model.backbone.state_dict()

    return _cached_state(WEIGHTS_CACHE / f"{family}-pretrained-v{FINETUNE_CODE_VERSION}.pt", make)


def _head_trained(family: str, shots: int | None, batch_size: int) -> dict:
    """The whole model after the head alone was trained ``HEAD_START_STEPS`` (AdamW 1e-3, seed 0) on the target."""

    def make() -> dict:
        model = pretrained_model(family, 0)
        set_frozen(model, True)
        optimizer = torch.optim.AdamW(model.head.parameters(), lr=HEAD_START_LR, weight_decay=0.01)
        data = target_data(family, shots)
        _fit(model, optimizer, None, data.x_train, data.y_train, HEAD_START_STEPS, batch_size, seed=0)
        set_frozen(model, False)
        return model.state_dict()

    name = f"{family}-head-{shots or 'full'}-{batch_size}-v{FINETUNE_CODE_VERSION}.pt"
    return _cached_state(WEIGHTS_CACHE / name, make)


def pretrained_model(family: str, seed: int) -> Net:
    """The pretrained backbone with a new head for the target classes (the head's init from ``seed``)."""
    model = _fresh(family, TARGET_CLASSES[family], seed)
    model.backbone.load_state_dict(_pretrained_backbone(family))
    return model


def set_frozen(model: Net, frozen: bool) -> None:
    """Freezes (or frees) the backbone's parameters; BatchNorm statistics keep training (the app's ``train_bn``)."""
    for p in model.backbone.parameters():
        p.requires_grad_(not frozen)


def make_model(task: FinetuneTask, seed: int) -> Net:
    """The task's start: pretrained + a new head (seed), or the head-trained whole model; frozen for a head task."""
    if task.start == "head_trained":
        model = _fresh(task.family, TARGET_CLASSES[task.family], seed)
        model.load_state_dict(_head_trained(task.family, task.shots, task.batch_size))
    else:
        model = pretrained_model(task.family, seed)
    set_frozen(model, task.phase == "head")
    return model


def param_groups(task: FinetuneTask, model: Net, lr: float, scale: float | None = None) -> list[dict]:
    """The head's group first at ``lr``, then the backbone's at their ratio (``scale`` overrides the task's)."""
    head = {"params": list(model.head.parameters()), "lr": lr}
    if task.phase == "head":
        return [head]
    if task.layer_decay is not None and scale is None:
        from timm.optim import param_groups_layer_decay

        groups = param_groups_layer_decay(model.backbone, weight_decay=0.0, layer_decay=task.layer_decay)
        return [head] + [{"params": g["params"], "lr": lr * g["lr_scale"]} for g in groups]
    ratio = task.backbone_lr_scale if scale is None else scale
    return [head, {"params": list(model.backbone.parameters()), "lr": lr * ratio}]


def make_optimizer(task: FinetuneTask, model: Net, lr: float, scale: float | None = None) -> torch.optim.Optimizer:
    groups = param_groups(task, model, lr, scale)
    name = task.optimizer
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    if name == "sgd_momentum":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=0.01)
    if name == "nadam":
        return torch.optim.NAdam(groups, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def make_loss(task: FinetuneTask | None = None) -> nn.Module:
    return nn.CrossEntropyLoss()


def make_loader(task: FinetuneTask, data: TaskData, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    dataset = TensorDataset(data.x_train, data.y_train)
    return DataLoader(dataset, batch_size=task.batch_size, shuffle=True, drop_last=True, generator=generator)


# ---------------------------------------------------------------------------------------------------------------
# training


def _fit(model, optimizer, scheduler, x, y, steps: int, batch_size: int, seed: int) -> bool:
    """``steps`` optimizer steps on shuffled batches of (x, y); False when the loss stopped being finite."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)
    batches, loss_fn = lr_tasks.cycle(loader), nn.CrossEntropyLoss()
    model.train()
    for _ in range(steps):
        xb, yb = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        if not torch.isfinite(loss):
            return False
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return True


@torch.no_grad()
def evaluate(task: FinetuneTask, model: Net, data: TaskData) -> tuple[float, float]:
    """(held-out loss, accuracy); BatchNorm statistics made precise on the training set first (``lr_tasks``)."""
    lr_tasks.precise_batchnorm(model, data)
    model.eval()
    total, correct = 0.0, 0.0
    for start in range(0, len(data.x_eval), EVAL_CHUNK):
        x, y = data.x_eval[start : start + EVAL_CHUNK], data.y_eval[start : start + EVAL_CHUNK]
        out = model(x)
        total += float(F.cross_entropy(out, y)) * len(y)
        correct += float((out.argmax(dim=-1) == y).sum())
    model.train()
    loss = total / len(data.x_eval)
    return (loss if math.isfinite(loss) else math.inf), correct / len(data.x_eval)


def scheduler_for(task: FinetuneTask, optimizer: torch.optim.Optimizer, lr: float, steps: int):
    """None (constant), or OneCycle peaking at ``MAX_LR_FACTOR`` x each group's LR."""
    if task.schedule != "onecycle":
        return None
    peaks = [horizon_tasks.MAX_LR_FACTOR * g["lr"] for g in optimizer.param_groups]
    return horizon_tasks.onecycle(optimizer, peaks, steps)


def train(task: FinetuneTask, data: TaskData, seed: int, lr: float) -> tuple[float, float]:
    """The task's start (seed: head init and batch order) trained ``task.steps`` at head LR ``lr``."""
    model = make_model(task, seed)
    optimizer = make_optimizer(task, model, lr)
    scheduler = scheduler_for(task, optimizer, lr, task.steps)
    if not _fit(model, optimizer, scheduler, data.x_train, data.y_train, task.steps, task.batch_size, seed):
        return math.inf, task.chance
    return evaluate(task, model, data)


class FinetuneLattice(FamilyLattice):
    """``family_oracle.FamilyLattice`` (lattice, widening, cache layout) training the fine-tuning tasks."""

    def __init__(self, path: Path = CACHE_PATH) -> None:
        super().__init__(path)

    def _runs(self, task, data, store: dict, key: str, **how) -> tuple[float, float | None]:
        def run(seed: int) -> list:
            loss, acc = train(task, data, seed, how["lr"])
            return [loss if math.isfinite(loss) else None, acc]

        return _mean(self.oracle.seeds(store, key, range(task.oracle_seeds), run))

    def untrained(self, task, data) -> tuple[float, float | None]:
        entry = self.entry(task)
        if len(entry.get("untrained", [])) != task.oracle_seeds:
            entry["untrained"] = [list(evaluate(task, make_model(task, s), data)) for s in range(task.oracle_seeds)]
        return _mean(entry["untrained"])

    def has(self, task: FinetuneTask) -> bool:
        stored = self.oracle.cache.data.get(task.key())
        return bool(stored and stored.get("untrained") and stored.get("points"))


def compute_oracle(lattice: FinetuneLattice, tasks: list[FinetuneTask]) -> None:
    """Trains what is missing of each task's oracle into ``lattice`` (and its cache file)."""
    for task in tasks:
        started = time.perf_counter()
        data = make_data(task)
        lattice.untrained(task, data)
        lattice.build(task, data)
        lattice.extend_edges(task, data)
        entry = lattice.entry(task)
        entry["seconds"] = entry.get("seconds", 0.0) + time.perf_counter() - started
        lattice.save()


def summary(lattice: FinetuneLattice, task: FinetuneTask) -> dict:
    from benchmarks.family_oracle import summary as family_summary

    row = family_summary(lattice, task)
    row["optimizer"] = f"{task.optimizer} ({task.phase}, {task.schedule})"
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oracle", action="store_true", help="compute (and cache) the missing oracle points")
    parser.add_argument("--split", choices=("design", "holdout"))
    parser.add_argument("--tasks", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(1)
    wanted = [n for n in args.tasks.split(",") if n]
    unknown = [n for n in wanted if n not in TASKS_BY_NAME]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS_BY_NAME)}")
    pool = [TASKS_BY_NAME[n] for n in wanted] if wanted else list(TASKS)  # named: the probe's hold-out too
    tasks = [t for t in pool if args.split in (None, t.split)]
    lattice = FinetuneLattice()
    if args.oracle:
        compute_oracle(lattice, tasks)
    rows = [summary(lattice, t) for t in tasks if lattice.has(t)]
    for row in rows:
        log.info("%s: best %.2e loss %.4f (untrained %.4f)", row["task"], row["best_lr"], row["best_loss"],
                 row["untrained"])  # fmt: skip
    print(table(rows))
    if np.any([r["edge"] for r in rows]):
        print("best at the lattice's edge:", ", ".join(r["task"] for r in rows if r["edge"]))


if __name__ == "__main__":
    main()
