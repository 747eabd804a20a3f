"""LR-suggestion quality and cost: every suggestion rule and two anchors against a grid-search oracle.

For each task of ``lr_tasks.TASKS`` (fixed budget of constant-LR steps, held-out loss L):

* **Oracle**: L at every LR of a log grid (4 points per decade), mean over 4 training seeds; L* = the best mean,
  L(untrained) = the loss at init. (Two seeds were too few: on ``cnn_sgdm`` the two seeds' losses within half a
  decade of the best LR differed by 0.17 of the gap range at the median -- more than the 0.15 the rule is judged by.)
  Cached in ``benchmarks/results/lr_oracle_cache.json`` keyed by the task's hash.
* **Finders**, per finder seed (model init + batch order): ours (``traenslenzor.tuner.find_lr``), Lightning
  (``Tuner(trainer).lr_find(...).suggestion()``) and torch-lr-finder (``LRFinder.range_test`` + its steepest
  suggestion), each from the same freshly initialised model, same loader, same LR range and step count.
  Every rule of ``SUGGESTIONS`` is applied to our curve.
* **Score** of a suggested LR s: L(s) is measured by *training at s directly* (same budget, same 4 seeds as the
  oracle; cached), gap = (L(s) - L*) / (L(untrained) - L*) clipped to at most 1; divergence or no suggestion = 1.
  Distance = log10(s / lr*) in decades (signed: + means s is above the grid's best).
* **Cost**: wall time of each finder / wall time of the same number of plain training steps on the same loader,
  measured in the same run, normalised by the steps each finder actually ran (early stop).

Run from the repository root: ``python -m benchmarks.lr_quality`` (full, ~10-15 min on 2 cores the first time, the
oracle then comes from the cache), ``--quick`` (3 tasks, 1 finder seed), ``--tasks a,b``. Needs ``.[bench]``
(torch-lr-finder is an anchor), also for ``--quick``. Prints markdown; writes ``benchmarks/results/lr_quality.json``
(``lr_quality_quick.json`` for ``--quick``; ``--out`` another path).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks import finders
from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.finders import Sweep, lit_module, run_lightning, run_torch_lr_finder
from benchmarks.lr_tasks import (
    GROUPS,
    TASKS,
    TASKS_BY_NAME,
    Task,
    TaskData,
    cycle,
    grid_lrs,
    make_data,
    make_loader,
    make_loss,
    make_model,
    make_optimizer,
    train_constant,
    untrained_loss,
)
from benchmarks.oracle import Oracle
from traenslenzor.tuner.lr.suggestion import DEFAULT_SUGGESTION, SUGGESTIONS, suggest

log = logging.getLogger("lr_quality")
CACHE_PATH = RESULTS / "lr_oracle_cache.json"
ORACLE_SEEDS = (0, 1, 2, 3)
ANCHORS = ("lightning", "torch_lr_finder")


# ---------------------------------------------------------------------------------------------------------------
# oracle (cached)


def grid_oracle(read_also: Path | None = None) -> Oracle:
    """The oracle of this benchmark's grid (``CACHE_PATH``): per task ``losses`` by LR, ``untrained``."""
    return Oracle(CACHE_PATH, read_also=read_also)


def loss_at(oracle: Oracle, task: Task, data: TaskData, lr: float) -> float:
    """Held-out loss of training at constant ``lr``, mean over ``ORACLE_SEEDS``; inf when a seed diverged."""
    key = f"{lr:.6e}"
    entry = oracle.entry(task, losses={}, untrained=None)

    def train(seed: int) -> float | None:
        loss = train_constant(task, data, float(key), seed)
        return loss if math.isfinite(loss) else None

    losses = oracle.seeds(entry["losses"], key, ORACLE_SEEDS, train)
    return math.inf if any(v is None for v in losses) else float(np.mean(losses))


def untrained(oracle: Oracle, task: Task, data: TaskData) -> float:
    """Held-out loss at init, mean over ``ORACLE_SEEDS``."""
    entry = oracle.entry(task, losses={}, untrained=None)
    if entry.get("untrained_seeds") != len(ORACLE_SEEDS):
        entry["untrained"] = float(np.mean([untrained_loss(task, data, seed) for seed in ORACLE_SEEDS]))
        entry["untrained_seeds"] = len(ORACLE_SEEDS)
    return entry["untrained"]


def grid(oracle: Oracle, task: Task, data: TaskData) -> tuple[list[float], list[float]]:
    """The loss at every LR of the task's grid (4 points per decade)."""
    lrs = grid_lrs(task, points_per_decade=4)
    return lrs, [loss_at(oracle, task, data, lr) for lr in lrs]


# ---------------------------------------------------------------------------------------------------------------
# finders


def plain_steps(task: Task, data: TaskData, seed: int) -> float:
    """Wall time of ``task.num_training`` plain training steps on the finder's loader (the physical floor)."""
    model = make_model(task, seed)
    optimizer = make_optimizer(task, model.parameters(), task.finder_range[0])
    loss_fn = make_loss(task)
    batches = cycle(make_loader(task, data, seed))
    start = time.perf_counter()
    for _ in range(task.num_training):
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
    return time.perf_counter() - start


def sweep_of(task: Task) -> Sweep:
    return Sweep(*task.finder_range, task.num_training)


def run_ours(task: Task, data: TaskData, seed: int) -> dict:
    model = make_model(task, seed)
    optimizer = make_optimizer(task, model.parameters(), task.finder_range[0])
    loader = make_loader(task, data, seed)
    ours = finders.run_ours(model, optimizer, make_loss(task), loader, sweep_of(task))
    result = ours["result"]
    curve = result.results
    suggestions = {
        name: suggest(curve["lr"], curve["loss"], method=name).lr for name in SUGGESTIONS
    }  # default skips (10, 1)
    return {
        "seconds": ours["seconds"],
        "steps": len(curve["lr"]),
        "suggestions": suggestions,
        "findings": [finding.code for finding in result.diagnostics()],  # judged for the default rule
        "curve": {key: [float(v) for v in curve[key]] for key in ("lr", "loss", "raw_loss")},
    }


def lit_task(task: Task, seed: int):  # -> lightning.pytorch.LightningModule (imported lazily)
    """The task's model, loss and optimizer (``lr_tasks``) as a LightningModule, for the Tuner-based finders."""
    return lit_module(
        lambda: make_model(task, seed),
        make_loss(task),
        lambda module, lr: make_optimizer(task, module.parameters(), lr),
        task.finder_range[0],
    )


def run_anchors(task: Task, data: TaskData, seed: int) -> tuple[dict, dict]:
    """Lightning's and torch-lr-finder's runs, each from the same fresh model and loader as ours."""
    module = lit_task(task, seed)
    lit = run_lightning(module, make_loader(task, data, seed), sweep_of(task))
    model = make_model(task, seed)
    optimizer = make_optimizer(task, model.parameters(), task.finder_range[0])
    loader = make_loader(task, data, seed)
    tlf = run_torch_lr_finder(model, optimizer, make_loss(task), loader, sweep_of(task), task.name)
    return (
        {"seconds": lit["seconds"], "steps": lit["steps"], "suggestions": {"lightning": lit["suggestion"]}},
        {"seconds": tlf["seconds"], "steps": tlf["steps"], "suggestions": {"torch_lr_finder": tlf["suggestion"]}},
    )


# ---------------------------------------------------------------------------------------------------------------
# scoring and tables


def score(oracle: Oracle, task: Task, data: TaskData, lr: float | None, best: tuple[float, float], l0: float) -> dict:
    lr_best, loss_best = best
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return {"lr": None, "loss": None, "gap": 1.0, "decades": None}
    loss = loss_at(oracle, task, data, lr)
    gap = 1.0 if not math.isfinite(loss) else min(1.0, (loss - loss_best) / (l0 - loss_best))
    return {"lr": lr, "loss": loss if math.isfinite(loss) else None, "gap": gap, "decades": math.log10(lr / lr_best)}


def run_task(task: Task, oracle: Oracle, finder_seeds: list[int]) -> dict:
    data = make_data(task)
    lrs, losses = grid(oracle, task, data)
    best_i = int(np.argmin(losses))
    best = (lrs[best_i], losses[best_i])
    l0 = untrained(oracle, task, data)
    oracle.save()
    log.info("%s: grid best lr %.2e, L* %.4f, L(untrained) %.4f", task.name, *best, l0)
    runs = []
    for seed in finder_seeds:
        plain = plain_steps(task, data, seed)
        ours = run_ours(task, data, seed)
        lit, tlf = run_anchors(task, data, seed)
        suggestions = {**ours["suggestions"], **lit["suggestions"], **tlf["suggestions"]}
        scores = {name: score(oracle, task, data, lr, best, l0) for name, lr in suggestions.items()}
        oracle.save()
        per_step = plain / task.num_training
        cost = {
            name: r["seconds"] / (per_step * r["steps"])
            for name, r in (("ours", ours), ("lightning", lit), ("torch_lr_finder", tlf))
        }
        runs.append(
            {
                "seed": seed,
                "scores": scores,
                "cost": cost,
                "plain_seconds": plain,
                "curve": ours["curve"],
                "findings": ours["findings"],
                "steps": {"ours": ours["steps"], "lightning": lit["steps"], "torch_lr_finder": tlf["steps"]},
            }
        )
        log.info("%s seed %d: %s", task.name, seed, {k: round(v["gap"], 3) for k, v in scores.items()})
    return {
        "task": task.name,
        "key": task.key(),
        "grid": {"lr": lrs, "loss": [v if math.isfinite(v) else None for v in losses]},
        "best_lr": best[0],
        "best_loss": best[1],
        "untrained_loss": l0,
        "runs": runs,
    }


def methods() -> list[str]:
    return [*SUGGESTIONS, *ANCHORS]


def gap_cell(scores: list[dict]) -> str:
    """``median / worst gap (median signed decades)`` of one rule's scores over finder seeds."""
    gaps = [s["gap"] for s in scores]
    decades = [s["decades"] for s in scores if s["decades"] is not None]
    dec = f"{statistics.median(decades):+.1f}" if decades else "–"
    return f"{statistics.median(gaps):.3f} / {max(gaps):.3f} ({dec})"


def quality_table(tasks: list[dict]) -> str:
    names = methods()
    header = "| task (best lr) | " + " | ".join(n + (" *" if n == DEFAULT_SUGGESTION else "") for n in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for t in tasks:
        cells = [gap_cell([r["scores"][n] for r in t["runs"]]) for n in names]
        lines.append(f"| {t['task']} ({t['best_lr']:.1e}) | " + " | ".join(cells) + " |")
    for group, members in GROUPS.items():
        scores = {n: [r["scores"][n] for t in tasks if t["task"] in members for r in t["runs"]] for n in names}
        if scores[names[0]]:
            lines.append(f"| *{group} tasks* | " + " | ".join(gap_cell(scores[n]) for n in names) + " |")
    every = {n: [r["scores"][n] for t in tasks for r in t["runs"]] for n in names}
    lines.append(
        "| **all: median / worst gap (median Δdec)** | " + " | ".join(gap_cell(every[n]) for n in names) + " |"
    )
    abs_dec = {n: [abs(s["decades"]) for s in every[n] if s["decades"] is not None] for n in names}
    lines.append(
        "| **all: median / worst abs Δdec** | "
        + " | ".join(f"{statistics.median(d):.2f} / {max(d):.2f}" if d else "–" for d in abs_dec.values())
        + " |"
    )
    return "\n".join(lines)


def diagnostics_table(tasks: list[dict], good: float = 0.05, bad: float = 0.15) -> str:
    """Findings of ``LRFinderResult.diagnostics()`` per task, next to the default rule's gap on the same curves.

    A warning on a curve whose suggestion is good (gap <= ``good``) is a false alarm; a suggestion worse than
    ``bad`` without any warning is a miss.
    """
    lines = [f"| task | {DEFAULT_SUGGESTION} gaps | findings (seeds) |", "|---|---|---|"]
    alarms = misses = warned = 0
    for t in tasks:
        counts: dict[str, int] = {}
        for r in t["runs"]:
            for code in r["findings"]:
                counts[code] = counts.get(code, 0) + 1
            gap = r["scores"][DEFAULT_SUGGESTION]["gap"]
            warning = any(code not in ("never_diverged",) for code in r["findings"])  # never_diverged is info
            warned += warning
            alarms += warning and gap <= good
            misses += (not warning) and gap > bad
        gaps = " ".join(f"{r['scores'][DEFAULT_SUGGESTION]['gap']:.3f}" for r in t["runs"])
        found = ", ".join(f"{code} ({n})" for code, n in sorted(counts.items())) or "–"
        lines.append(f"| {t['task']} | {gaps} | {found} |")
    runs = sum(len(t["runs"]) for t in tasks)
    lines.append(
        f"| **{runs} curves** | | {warned} with a warning; {alarms} of them on a good suggestion (gap ≤ {good}); "
        f"{misses} bad suggestions (gap > {bad}) without one |"
    )
    return "\n".join(lines)


def cost_table(tasks: list[dict]) -> str:
    finders = ("ours", "lightning", "torch_lr_finder")
    lines = ["| task | plain steps (s) | " + " | ".join(finders) + " |", "|---|---|" + "---|" * len(finders)]
    for t in tasks:
        plain = statistics.median(r["plain_seconds"] for r in t["runs"])
        ratios = [statistics.median(r["cost"][f] for r in t["runs"]) for f in finders]
        lines.append(f"| {t['task']} | {plain:.3f} | " + " | ".join(f"{x:.2f}×" for x in ratios) + " |")
    medians = [statistics.median(statistics.median(r["cost"][f] for r in t["runs"]) for t in tasks) for f in finders]
    lines.append("| **median over tasks** | | " + " | ".join(f"**{x:.2f}×**" for x in medians) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# robustness: rules chosen on half the tasks, checked on the other half and on other sweep settings

SWEEP_VARIANTS = {
    "as in table 1": {},
    "num_training=50": {"num_training": 50},
    "num_training=200": {"num_training": 200},
    "min_lr=1e-5": {"min_lr": 1e-5},
    "min_lr=1e-6": {"min_lr": 1e-6},  # the doc_classifier quickstart's range (its max_lr is 1)
}


def oracle_grid(oracle: Oracle, task: Task, data: TaskData) -> dict:
    """The oracle's grid as ``grid_gap`` reads it: ``lr``, ``loss`` (None where training diverged), ``untrained``."""
    lrs, losses = grid(oracle, task, data)
    return {
        "lr": lrs,
        "loss": [v if math.isfinite(v) else None for v in losses],
        "untrained": untrained(oracle, task, data),
    }


def grid_gap(grid: dict, lr: float | None) -> float:
    """Gap of ``lr`` by linear interpolation of the oracle grid in log-LR (no training; 1 if a neighbour diverged)."""
    if lr is None:
        return 1.0
    x, losses = np.log10(grid["lr"]), np.array([np.inf if v is None else v for v in grid["loss"]])
    j = int(np.clip(np.searchsorted(x, np.log10(lr)), 1, len(x) - 1))
    w = float(np.clip((np.log10(lr) - x[j - 1]) / (x[j] - x[j - 1]), 0.0, 1.0))
    loss = losses[j - 1] + w * (losses[j] - losses[j - 1]) if np.isfinite(losses[[j - 1, j]]).all() else np.inf
    best, l0 = float(np.min(losses)), grid["untrained"]
    return 1.0 if not np.isfinite(loss) else min(1.0, (loss - best) / (l0 - best))


def robustness_table(tasks: list[Task], oracle: Oracle, seeds: list[int]) -> tuple[str, dict]:
    """Every rule under each sweep variant, on the design, confirm and hold-out tasks (see ``lr_tasks``)."""
    halves = GROUPS
    gaps: dict = {}
    for task in tasks:
        data = make_data(task)
        grid = oracle_grid(oracle, task, data)
        for variant, change in SWEEP_VARIANTS.items():
            low = change.get("min_lr", task.finder_range[0])
            swept = replace(task, num_training=change.get("num_training", task.num_training),
                            finder_range=(low, task.finder_range[1]))  # fmt: skip
            for seed in seeds:
                for name, lr in run_ours(swept, data, seed)["suggestions"].items():
                    gaps.setdefault((variant, name), {}).setdefault(task.name, []).append(grid_gap(grid, lr))
    names = list(SUGGESTIONS)
    lines = ["| sweep | half | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for variant in SWEEP_VARIANTS:
        for half, members in halves.items():
            cells = []
            for name in names:
                g = [v for t, vs in gaps[(variant, name)].items() if t in members for v in vs]
                cells.append(f"{statistics.median(g):.3f} / {max(g):.2f}" if g else "–")
            lines.append(f"| {variant} | {half} | " + " | ".join(cells) + " |")
    return "\n".join(lines), {f"{v}|{n}": per_task for (v, n), per_task in gaps.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 tasks, 1 finder seed (smoke run)")
    parser.add_argument("--tasks", help=f"comma-separated subset of {[t.name for t in TASKS]}")
    parser.add_argument("--finder-seeds", type=int, default=3, help="finder seeds per task (default 3)")
    parser.add_argument("--out", type=Path, help="JSON output path")
    parser.add_argument(
        "--robustness", action="store_true",
        help="instead: every rule under other sweep settings, design vs confirm half (scored on the oracle grid)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_loggers()
    torch.set_num_threads(1)  # timing on a shared machine: one thread is the steadiest

    tasks = list(TASKS[:3]) if args.quick else list(TASKS)
    if args.tasks:
        unknown = set(args.tasks.split(",")) - set(TASKS_BY_NAME)
        if unknown:
            parser.error(f"unknown task(s) {sorted(unknown)}; known: {sorted(TASKS_BY_NAME)}")
        tasks = [TASKS_BY_NAME[name] for name in args.tasks.split(",")]
    seeds = list(range(100, 100 + (1 if args.quick else args.finder_seeds)))
    oracle = grid_oracle()
    started = time.perf_counter()
    if args.robustness:
        table, gaps = robustness_table(tasks, oracle, seeds)
        print("\n## Table 3: gap by oracle-grid interpolation, median / worst over tasks x seeds\n")
        print(table)
        out = args.out or RESULTS / "lr_quality_robustness.json"
        out.write_text(
            json.dumps({"default": DEFAULT_SUGGESTION, "finder_seeds": seeds, "table3": table, "gaps": gaps})
        )
        print(f"\nwrote {out} ({time.perf_counter() - started:.0f} s)")
        return
    results = [run_task(task, oracle, seeds) for task in tasks]
    table1, table2, table_diag = quality_table(results), cost_table(results), diagnostics_table(results)
    print("\n## Table 1: normalised gap to the grid's best LR, median / worst over finder seeds (median decades)\n")
    print(table1)
    print("\n## Diagnostics: findings per task against the default rule's gap\n")
    print(table_diag)
    print("\n## Table 2: finder wall time / wall time of the same number of plain training steps (median)\n")
    print(table2)
    out = args.out or RESULTS / ("lr_quality_quick.json" if args.quick else "lr_quality.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "finder": "traenslenzor.tuner.find_lr",
                "default": DEFAULT_SUGGESTION,
                "finder_seeds": seeds,
                "oracle_seeds": ORACLE_SEEDS,
                "seconds": time.perf_counter() - started,
                "tasks": results,
                "table1": table1,
                "table2": table2,
                "diagnostics": table_diag,
            },
            indent=1,
        )
    )
    print(f"\nwrote {out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
