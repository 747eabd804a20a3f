"""Synthetic document data: how fast it renders, and how learnable it is.

Part ``render``: pages per second generated on one core (the generator is single-threaded Python + Pillow),
per image size, with and without scan artefacts, plus the training-loader throughput (transform + collate) of
an in-memory split.
Part ``learn``: a small CNN trained for a few CPU minutes on the synthetic split the quickstart uses; reports
validation accuracy, per-class accuracy, the confusion matrix and the confusable-pair error rates. The data
should be clearly above chance (1/16 = 6.25 %) and below 100 %.

    python -m benchmarks.data_throughput                # both parts
    python -m benchmarks.data_throughput --part render  # seconds
    python -m benchmarks.data_throughput --part learn --epochs 8

Prints markdown tables; writes benchmarks/results/data_throughput.json and data_learnability.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time

import numpy as np
import torch
from torch import nn

from benchmarks.common import RESULTS
from traenslenzor.doc_classifier.data import CONFUSABLE_PAIRS, RVL_CDIP_CLASSES, DataModuleConfig, DocDataModule
from traenslenzor.doc_classifier.data.synthetic import render_sample

logger = logging.getLogger("data_throughput")


def render_rate(image_size: int, strength: float, pages: int) -> tuple[float, float]:
    """Pages per wall-clock second and per CPU second of ``render_sample`` in this (single) thread.

    On a shared machine the wall-clock rate drops with the load; the CPU-time rate is what one free core gives.
    """
    render_sample(0, "train", 0, image_size, strength)  # warm the font cache
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(pages):
        render_sample(0, "train", i, image_size, strength)
    return pages / (time.perf_counter() - wall), pages / (time.process_time() - cpu)


def loader_rate(image_size: int, preset: str, pages: int) -> float:
    """Samples per second through ``train_dataloader`` (transforms + collate) of an in-memory split."""
    dm = DocDataModule(
        DataModuleConfig(
            image_size=image_size,
            synthetic_train_size=pages,
            synthetic_val_size=16,
            synthetic_test_size=16,
            train_transform=preset,
            batch_size=64,
            mean=0.8,
            std=0.2,
        )
    )
    dm.setup("fit")
    start = time.perf_counter()
    n = sum(len(y) for _, y in dm.train_dataloader())
    return n / (time.perf_counter() - start)


def run_render(pages: int) -> dict:
    torch.set_num_threads(1)
    rows = []
    for size in (64, 128, 224):
        for strength in (1.0, 0.0):
            n = pages if size <= 128 else pages // 2
            wall, cpu = render_rate(size, strength, n)
            rows.append(
                {
                    "image_size": size,
                    "artefact_strength": strength,
                    "pages": n,
                    "pages_per_wall_s": wall,
                    "pages_per_cpu_s": cpu,
                }
            )
    loaders = [
        {"image_size": s, "preset": p, "samples_per_s": loader_rate(s, p, 1024)}
        for s in (64, 128)
        for p in ("val", "train", "train_heavy")
    ]
    print("\n### Rendering, one core (pages/s)\n")
    print("| image size | artefacts | pages | pages/s (wall) | pages/s (CPU time) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['image_size']} | {r['artefact_strength']:g} | {r['pages']} | {r['pages_per_wall_s']:.0f} "
            f"| {r['pages_per_cpu_s']:.0f} |"
        )
    print("\n### Training loader from the in-memory split, one thread (samples/s, batch 64)\n")
    print("| image size | preset | samples/s |\n| ---: | --- | ---: |")
    for r in loaders:
        print(f"| {r['image_size']} | {r['preset']} | {r['samples_per_s']:.0f} |")
    return {"render": rows, "loader": loaders}


class SmallCNN(nn.Module):
    """Four conv blocks (16-32-64-128 channels) and a linear head: ~100k parameters."""

    def __init__(self, in_channels: int = 1, num_classes: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for width in (16, 32, 64, 128):
            layers += [
                nn.Conv2d(c, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def evaluate(model: nn.Module, loader) -> tuple[float, np.ndarray]:
    model.eval()
    confusion = np.zeros((16, 16), dtype=np.int64)
    with torch.no_grad():
        for x, y in loader:
            pred = model(x).argmax(1)
            np.add.at(confusion, (y.numpy(), pred.numpy()), 1)
    return float(np.trace(confusion) / confusion.sum()), confusion


def run_learn(epochs: int, image_size: int, train_size: int, val_size: int, lr: float, threads: int) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    cfg = DataModuleConfig(
        image_size=image_size,
        batch_size=64,
        synthetic_train_size=train_size,
        synthetic_val_size=val_size,
        synthetic_test_size=16,
        seed=0,
    )
    start = time.perf_counter()
    dm = DocDataModule(cfg)
    dm.setup("fit")
    render_s = time.perf_counter() - start
    model = SmallCNN(dm.in_channels, dm.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * len(dm.train_dataloader())
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.3)
    history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for x, y in dm.train_dataloader():
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc, confusion = evaluate(model, dm.val_dataloader())
        history.append(
            {
                "epoch": epoch + 1,
                "val_acc": acc,
                "train_loss_last": float(loss.detach()),
                "elapsed_s": time.perf_counter() - start,
            }
        )
        logger.info("epoch %d  val acc %.3f  (%.0f s)", epoch + 1, acc, history[-1]["elapsed_s"])
    train_s = time.perf_counter() - start
    per_class = confusion.diagonal() / confusion.sum(1)
    pairs = []
    for a, b in CONFUSABLE_PAIRS:
        i, j = RVL_CDIP_CLASSES.index(a), RVL_CDIP_CLASSES.index(b)
        pairs.append(
            {
                "pair": f"{a} / {b}",
                "a_as_b": int(confusion[i, j]),
                "b_as_a": int(confusion[j, i]),
                "support": int(confusion[i].sum() + confusion[j].sum()),
            }
        )
    _print_learn(acc, per_class, confusion, pairs, epochs, render_s, train_s, cfg)
    return {
        "config": cfg.model_dump(mode="json"),
        "epochs": epochs,
        "lr": lr,
        "threads": threads,
        "render_s": render_s,
        "train_s": train_s,
        "val_acc": acc,
        "chance": 1 / 16,
        "per_class_acc": dict(zip(RVL_CDIP_CLASSES, per_class.tolist(), strict=True)),
        "confusion": confusion.tolist(),
        "confusable_pairs": pairs,
        "history": history,
    }


def _print_learn(acc, per_class, confusion, pairs, epochs, render_s, train_s, cfg) -> None:
    print(
        f"\n### Small CNN on synthetic pages ({cfg.image_size}px, {cfg.synthetic_train_size} train / "
        f"{cfg.synthetic_val_size} val, {epochs} epochs; render {render_s:.0f} s, train {train_s:.0f} s)\n"
    )
    print(f"Validation accuracy: **{acc:.3f}** (chance 0.0625)\n")
    short = [n[:6] for n in RVL_CDIP_CLASSES]
    print("| true \\ pred | " + " | ".join(f"{i}" for i in range(16)) + " | acc |")
    print("| --- " * 18 + "|")
    for i, row in enumerate(confusion):
        print(f"| {i} {short[i]} | " + " | ".join(str(v) for v in row) + f" | {per_class[i]:.2f} |")
    print("\n| confusable pair | a→b | b→a | support |\n| --- | ---: | ---: | ---: |")
    for p in pairs:
        print(f"| {p['pair']} | {p['a_as_b']} | {p['b_as_a']} | {p['support']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("render", "learn", "all"), default="all")
    parser.add_argument("--pages", type=int, default=600, help="pages rendered per rate measurement")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=3200)
    parser.add_argument("--val-size", type=int, default=640)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_avg_1m_at_start": os.getloadavg()[0],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.part in ("render", "all"):
        out = {"env": env, **run_render(args.pages)}
        (RESULTS / "data_throughput.json").write_text(json.dumps(out, indent=2))
    if args.part in ("learn", "all"):
        out = {
            "env": env,
            **run_learn(args.epochs, args.image_size, args.train_size, args.val_size, args.lr, args.threads),
        }
        (RESULTS / "data_learnability.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
