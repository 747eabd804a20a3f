"""The grid oracle of the family tasks (``benchmarks.family_tasks``): training, the cached lattice, gap and best LR.

Per task: held-out loss after ``task.steps`` steps at each base LR ``10**(k/4)`` of ``lr_horizon``'s lattice (a
coarse pass over ``task.lattice``, widened while the best point is at an edge, then the 0.25-decade neighbours of
the best), at a constant LR or OneCycle (``max_lr = 3 x`` the base, ``horizon_tasks.onecycle``), mean over
``task.oracle_seeds`` training seeds; the untrained loss beside it. Cached in
``benchmarks/results/family_oracle_cache.json`` by task hash (``benchmarks.oracle.Oracle``). ``gap`` and ``best_lr``
read only the cache.

Run: ``python -m benchmarks.family_tasks --oracle [--split design|holdout] [--tasks a,b]`` computes what is missing
and prints the table; without ``--oracle`` it prints the cached table.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import horizon_tasks, lr_tasks
from benchmarks.common import RESULTS
from benchmarks.family_tasks import (
    FAMILY_TASKS,
    TASKS_BY_NAME,
    FamilyTask,
    make_data,
    make_loader,
    make_loss,
    make_model,
    make_optimizer,
)
from benchmarks.lr_horizon import EXTEND_LIMIT, Lattice, _mean

log = logging.getLogger("family_oracle")
CACHE_PATH = RESULTS / "family_oracle_cache.json"
EVAL_CHUNK = 1024
EDGE_GAP = 0.5  # the gap an edge point of the lattice must reach (the gap reads the edge value outside the lattice)
EDGE_LIMIT = 16  # quarter-decades past the first window the edges may be pushed


@torch.no_grad()
def evaluate(task: FamilyTask, model: torch.nn.Module, data: lr_tasks.TaskData) -> tuple[float, float | None]:
    """(held-out loss, accuracy for single-label classification else None); loss inf when not finite."""
    model.eval()
    loss_fn, total, correct = make_loss(task), 0.0, 0
    for start in range(0, len(data.x_eval), EVAL_CHUNK):
        x, y = data.x_eval[start : start + EVAL_CHUNK], data.y_eval[start : start + EVAL_CHUNK]
        out = model(x)
        total += float(loss_fn(out, y)) * len(y)
        if task.classification:
            correct += float((out.argmax(dim=-1) == y).float().mean()) * len(y)
    model.train()
    loss = total / len(data.x_eval)
    return (loss if math.isfinite(loss) else math.inf), (correct / len(data.x_eval) if task.classification else None)


def train(task: FamilyTask, data: lr_tasks.TaskData, seed: int, lr: float) -> tuple[float, float | None]:
    """A fresh model (init and batch order from ``seed``) trained for ``task.steps`` at base LR ``lr`` (constant, or
    OneCycle peaking at 3 x ``lr``); (held-out loss, accuracy), loss inf on divergence."""
    model = make_model(task, seed)
    optimizer = make_optimizer(task, model, lr)
    scheduler = None
    if task.schedule == "onecycle":
        scheduler = horizon_tasks.onecycle(optimizer, horizon_tasks.MAX_LR_FACTOR * lr, task.steps)
    loss_fn = make_loss(task)
    batches = lr_tasks.cycle(make_loader(task, data, seed))
    model.train()
    for _ in range(task.steps):
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            return math.inf, task.chance
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return evaluate(task, model, data)


class FamilyLattice(Lattice):
    """``lr_horizon.Lattice`` (same lattice, widening and cache layout) training the family tasks."""

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

    def edge_gaps(self, task: FamilyTask) -> tuple[float, float]:
        """The normalised gap at the lowest and at the highest evaluated lattice point (1 where it diverged)."""
        points = self.evaluated(task)
        best = min(v[0] for v in points.values())
        base = float(np.mean([v[0] for v in self.entry(task)["untrained"]]))
        low, high = points[min(points)][0], points[max(points)][0]
        return tuple(min(1.0, (v - best) / (base - best)) if math.isfinite(v) else 1.0 for v in (low, high))

    def extend_edges(self, task: FamilyTask, data) -> None:
        """Widen the lattice until each edge point is at least ``EDGE_GAP`` from the best (or ``EDGE_LIMIT``
        quarter-decades past the first window), so that the gap's edge value outside it is not flattering."""
        lo, hi = task.lattice
        while True:
            ks = sorted(self.evaluated(task))
            low, high = self.edge_gaps(task)
            if low < EDGE_GAP and ks[0] > lo - EDGE_LIMIT:
                self.point(task, data, ks[0] - task.coarse)
            elif high < EDGE_GAP and ks[-1] < hi + EDGE_LIMIT:
                self.point(task, data, ks[-1] + task.coarse)
            else:
                return

    def has(self, task: FamilyTask) -> bool:
        """Whether the cache holds a finished oracle for ``task`` (its untrained loss and a lattice point)."""
        stored = self.oracle.cache.data.get(task.key())
        return bool(stored and stored.get("untrained") and stored.get("points"))


_LATTICE: FamilyLattice | None = None


def _cached(task: FamilyTask, oracle: FamilyLattice | None) -> FamilyLattice:
    """``oracle`` (default: the committed cache, read once), checked to hold ``task``'s oracle."""
    global _LATTICE
    if oracle is None:
        _LATTICE = _LATTICE or FamilyLattice()
        oracle = _LATTICE
    if not oracle.has(task):
        raise LookupError(
            f"no cached oracle for family task {task.name!r} (key {task.key()}) in {CACHE_PATH.name}: compute it "
            f"with `python -m benchmarks.family_tasks --oracle --tasks {task.name}`"
        )
    return oracle


def gap(task: FamilyTask, lr: float | None, oracle: FamilyLattice | None = None) -> float:
    """Normalised gap to the grid's best as ``lr_reading`` scores horizon tasks: linear in log-LR between evaluated
    lattice points, the edge value outside; 0 = the grid's best, 1 = useless (or no LR)."""
    from benchmarks.lr_reading import _horizon_gap

    return _horizon_gap(_cached(task, oracle), task, lr)


def best_lr(task: FamilyTask, oracle: FamilyLattice | None = None) -> float:
    return _cached(task, oracle).best(task)["lr"]


def summary(lattice: FamilyLattice, task: FamilyTask) -> dict:
    """The oracle's row: best LR and loss, untrained loss, points, whether the best sits at the lattice's edge."""
    points = lattice.evaluated(task)
    best = lattice.best(task)
    entry = lattice.entry(task)
    untrained = float(np.mean([v[0] for v in entry["untrained"]]))
    edge = best["k"] in (min(points), max(points))
    low, high = lattice.edge_gaps(task)
    return {
        "task": task.name, "family": task.family, "split": task.split, "group": task.group,
        "optimizer": task.optimizer, "steps": task.steps, "best_lr": best["lr"], "best_loss": best["loss"],
        "untrained": untrained, "points": len(points), "edge": edge,
        "lattice": [10 ** (min(points) / 4), 10 ** (max(points) / 4)], "edge_gaps": [low, high],
        "seconds": entry.get("seconds", 0.0),
    }  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = [
        "| task | family | split | optimizer | steps | best LR | best loss | untrained | lattice (gap at its ends) "
        "| points | best at an end | oracle s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        (a, b), (ga, gb) = r["lattice"], r["edge_gaps"]
        lines.append(
            f"| {r['task']} | {r['family']} | {r['split']} | {r['optimizer']} | {r['steps']} | {r['best_lr']:.2e} | "
            f"{r['best_loss']:.4f} | {r['untrained']:.4f} | {a:.1e} ({ga:.2f}) .. {b:.1e} ({gb:.2f}) | {r['points']} | "
            f"{'EDGE' if r['edge'] else '-'} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oracle", action="store_true", help="compute (and cache) the missing oracle points")
    parser.add_argument("--split", choices=("design", "holdout"), help="only this split's families")
    parser.add_argument("--tasks", default="", help="only these task names (comma-separated)")
    parser.add_argument("--cache", default=str(CACHE_PATH), help="the oracle cache file (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(1)
    wanted = [n for n in args.tasks.split(",") if n]
    unknown = [n for n in wanted if n not in TASKS_BY_NAME]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS_BY_NAME)}")
    tasks = [t for t in FAMILY_TASKS if (not wanted or t.name in wanted) and args.split in (None, t.split)]
    lattice, rows = FamilyLattice(Path(args.cache)), []
    for task in tasks:
        if args.oracle:
            start = time.perf_counter()
            data = make_data(task)
            lattice.untrained(task, data)
            lattice.build(task, data)
            lattice.extend_edges(task, data)
            entry = lattice.entry(task)
            entry["seconds"] = entry.get("seconds", 0.0) + time.perf_counter() - start
            lattice.save()
        elif not lattice.has(task):
            log.info("%s: no cached oracle (run with --oracle)", task.name)
            continue
        rows.append(summary(lattice, task))
        log.info("%s: best %.2e loss %.4f (untrained %.4f)", task.name, rows[-1]["best_lr"],
                 rows[-1]["best_loss"], rows[-1]["untrained"])  # fmt: skip
    print(table(rows))
    edges = [r["task"] for r in rows if r["edge"]]
    if edges:
        print(f"best at the lattice's edge (widening stopped at {EXTEND_LIMIT} quarter-decades): {', '.join(edges)}")


if __name__ == "__main__":
    main()
