"""LR suggestion at the users' horizon and schedule (issue 11.5): long constant-LR runs, OneCycle, the app's models.

For each task of ``horizon_tasks`` (groups ``long``, ``onecycle``, ``app``; design and hold-out tasks):

* **Oracle**: held-out loss (and accuracy) after ``task.steps`` steps at each base LR of a log lattice
  ``lr = 10**(k/4)``, mean over ``task.oracle_seeds`` training seeds. First a coarse pass (``task.coarse``
  quarter-decades apart, 0.5 decade for the small tasks) over ``task.lattice``, widened while the best point is at
  an edge; then the 0.25-decade neighbours of the best (0.5 decade for AlexNet). L* = the best mean loss,
  L(untrained) = the loss at init; A* the best mean accuracy. Cached in
  ``benchmarks/results/lr_horizon_oracle_cache.json`` by task hash, so a re-run of the suggestion side is cheap.
* **Finders**, per finder seed (model init + batch order), each on a freshly initialised model with the task's
  optimizer, the same loader, LR range and ``num_training``: ours (``traenslenzor.tuner.find_lr``, its default
  suggestion), fastai's ``valley`` rule on our curve (re-implemented from fastai's description in
  ``traenslenzor.tuner.lr.suggestion``), Lightning (``Tuner.lr_find().suggestion()``) and torch-lr-finder
  (``range_test`` + its steepest-gradient suggestion).
* **Not tuning**, trained on the same budget and scored the same way (mean over the oracle seeds): the task's
  optimizer at a fixed default LR (Adam-family 1e-3, SGD-family 0.1), Prodigy (lr = 1) and Schedule-Free AdamW
  (its defaults); see ``horizon_tasks`` for how each meets the task's schedule.
* **Score** of a suggested LR s: L(s) by linear interpolation in log LR between the nearest evaluated lattice
  points (when s lies outside them, the lattice point at s, rounded outwards, is trained; s itself is trained
  when a neighbour diverged); gap =
  (L(s) - L*) / (L(untrained) - L*), at most 1; no suggestion = 1. A method that is not an LR (Prodigy, ...) may
  score below 0: it beat the best constant/OneCycle LR of the grid. Accuracy gap likewise with A.
* **Spread**: max - min of log10(suggestion) over finder seeds, in decades. **Cost**: the model's forward calls
  during our finder (one per optimizer step here), as a multiple of ``num_training``.

Run from the repository root (needs ``.[bench]``):
``python -m benchmarks.lr_horizon --group long,onecycle,app --seeds 5`` (design tasks),
``--holdout`` (the hold-out tasks instead), ``--tasks a,b``, ``--refresh-oracles`` (recompute the cached oracles of
the selected tasks). Prints markdown tables; writes ``benchmarks/results/lr_horizon[_holdout].json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import finders
from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.finders import Sweep, lit_module, run_lightning, run_torch_lr_finder
from benchmarks.horizon_tasks import (
    GROUPS,
    INSTEAD,
    TASKS,
    TASKS_BY_NAME,
    HorizonTask,
    make_data,
    make_loader,
    make_loss,
    make_model,
    make_optimizer,
    train,
    untrained,
)
from benchmarks.oracle import Oracle
from traenslenzor.tuner.lr.suggestion import suggest

log = logging.getLogger("lr_horizon")
CACHE_PATH = RESULTS / "lr_horizon_oracle_cache.json"
FINDERS = ("ours", "valley", "lightning", "torch_lr_finder")
LABELS = {
    "ours": "ours", "valley": "fastai valley", "lightning": "Lightning", "torch_lr_finder": "torch-lr-finder",
    "default": "fixed default", "prodigy": "Prodigy", "schedulefree": "Schedule-Free",
}  # fmt: skip
EXTEND_LIMIT = 12  # quarter-decades the lattice may grow past its first window on each side


# ---------------------------------------------------------------------------------------------------------------
# oracle (cached)


def _mean(values: list[list[float | None]]) -> tuple[float, float | None]:
    """(mean loss, mean accuracy) over seeds; loss inf when any seed diverged."""
    losses = [v[0] for v in values]
    if any(v is None or not math.isfinite(v) for v in losses):
        return math.inf, (None if values[0][1] is None else float(np.mean([v[1] for v in values])))
    acc = None if values[0][1] is None else float(np.mean([v[1] for v in values]))
    return float(np.mean(losses)), acc


class Lattice:
    """Trained base LRs ``10**(k/4)`` per task, mean over the task's oracle seeds, held by an :class:`Oracle`.

    Per task entry: ``points`` (lattice point -> one ``[loss, accuracy]`` per seed), ``exact`` (LRs off the lattice),
    ``instead`` (the methods that are not an LR), ``untrained``.
    """

    def __init__(self, path: Path = CACHE_PATH) -> None:
        self.oracle = Oracle(path, save_each_run=True)

    def save(self) -> None:
        self.oracle.save()

    def refresh(self, task: HorizonTask) -> None:
        self.oracle.refresh(task)

    def entry(self, task: HorizonTask) -> dict:
        return self.oracle.entry(task, points={}, exact={}, instead={})

    def _runs(self, task: HorizonTask, data, store: dict, key: str, **how) -> tuple[float, float | None]:
        def run(seed: int) -> list:
            loss, acc = train(task, data, seed, **how)
            return [loss if math.isfinite(loss) else None, acc]

        return _mean(self.oracle.seeds(store, key, range(task.oracle_seeds), run))

    def point(self, task: HorizonTask, data, k: int) -> tuple[float, float | None]:
        """Mean (loss, accuracy) at lattice point ``k`` (lr = 10**(k/4))."""
        if str(k) not in self.entry(task)["points"]:
            log.info("  oracle %s: lr %.2e (k=%d)", task.name, 10 ** (k / 4), k)
        return self._runs(task, data, self.entry(task)["points"], str(k), lr=10 ** (k / 4))

    def exact(self, task: HorizonTask, data, lr: float) -> tuple[float, float | None]:
        return self._runs(task, data, self.entry(task)["exact"], f"{lr:.6e}", lr=float(f"{lr:.6e}"))

    def instead(self, task: HorizonTask, data, method: str) -> tuple[float, float | None]:
        return self._runs(task, data, self.entry(task)["instead"], method, method=method)

    def untrained(self, task: HorizonTask, data) -> tuple[float, float | None]:
        entry = self.entry(task)
        if len(entry.get("untrained", [])) != task.oracle_seeds:
            entry["untrained"] = [list(untrained(task, data, seed)) for seed in range(task.oracle_seeds)]
        return _mean(entry["untrained"])

    def evaluated(self, task: HorizonTask) -> dict[int, tuple[float, float | None]]:
        points = self.entry(task)["points"]
        return {int(k): _mean(v[: task.oracle_seeds]) for k, v in points.items() if len(v) >= task.oracle_seeds}

    def build(self, task: HorizonTask, data) -> None:
        """Coarse pass over the window (widened while the best is at an edge), then the fine neighbours of the best."""
        lo, hi = task.lattice
        for k in range(lo, hi + 1, task.coarse):
            self.point(task, data, k)
        while True:
            points = self.evaluated(task)
            ks = sorted(points)
            best = min(ks, key=lambda k: points[k][0])
            if best == ks[0] and ks[0] > lo - EXTEND_LIMIT:
                self.point(task, data, ks[0] - task.coarse)
            elif best == ks[-1] and ks[-1] < hi + EXTEND_LIMIT:
                self.point(task, data, ks[-1] + task.coarse)
            else:
                break
        step = max(1, task.coarse // 2)
        for k in (best - step, best + step):
            self.point(task, data, k)

    def best(self, task: HorizonTask) -> dict:
        points = self.evaluated(task)
        k_loss = min(points, key=lambda k: points[k][0])
        out = {"k": k_loss, "lr": 10 ** (k_loss / 4), "loss": points[k_loss][0], "acc_at_best_loss": points[k_loss][1]}
        if points[k_loss][1] is not None:
            k_acc = max(points, key=lambda k: points[k][1])
            out.update(acc=points[k_acc][1], acc_lr=10 ** (k_acc / 4))
        return out

    def at(self, task: HorizonTask, data, lr: float) -> tuple[float, float | None]:
        """(loss, accuracy) at base LR ``lr``: interpolated between evaluated lattice points (see module doc)."""
        x = 4 * math.log10(lr)
        points = self.evaluated(task)
        if x < min(points):  # one point at (or just below) s, not a walk of grid points down to it
            self.point(task, data, math.floor(x + 1e-9))
            points = self.evaluated(task)
        if x > max(points):
            self.point(task, data, math.ceil(x - 1e-9))
            points = self.evaluated(task)
        ks = sorted(points)
        j = int(np.searchsorted(ks, x))
        if j < len(ks) and abs(ks[j] - x) < 1e-9:
            return points[ks[j]]
        k0, k1 = ks[j - 1], ks[j]
        (l0, a0), (l1, a1) = points[k0], points[k1]
        if not (math.isfinite(l0) and math.isfinite(l1)):
            return self.exact(task, data, lr)
        w = (x - k0) / (k1 - k0)
        return l0 + w * (l1 - l0), (None if a0 is None else a0 + w * (a1 - a0))


# ---------------------------------------------------------------------------------------------------------------
# finders


def sweep_of(task: HorizonTask) -> Sweep:
    return Sweep(*task.finder_range, task.num_training)


def run_ours(task: HorizonTask, data, seed: int, batch_size: int | None = None) -> dict:
    """Our finder as a user calls it; steps counted as the model's forward calls (one per optimizer step here)."""
    model = make_model(task, seed)
    optimizer = make_optimizer(task, model, task.finder_range[0])
    loader = make_loader(task, data, seed, batch_size)
    ours = finders.run_ours(model, optimizer, make_loss(task), loader, sweep_of(task))
    result = ours["result"]
    curve = result.results
    return {
        "seconds": ours["seconds"],
        "forward_calls": ours["forward_calls"],
        "curve_points": len(curve["lr"]),
        "suggestions": {
            "ours": result.suggestion(),
            "valley": suggest(curve["lr"], curve["loss"], method="valley").lr,
        },
        "findings": [finding.code for finding in result.diagnostics()],
        "metadata": {k: v for k, v in result.metadata.items() if isinstance(v, int | float | str | bool)},
    }


def run_anchors(task: HorizonTask, data, seed: int) -> dict[str, float | None]:
    """Lightning's and torch-lr-finder's suggestions, each from the same fresh model and loader as ours."""
    module = lit_module(
        lambda: make_model(task, seed),
        make_loss(task),
        lambda lit, lr: make_optimizer(task, lit.model, lr),
        task.finder_range[0],
    )
    lit = run_lightning(module, make_loader(task, data, seed), sweep_of(task))
    model = make_model(task, seed)
    optimizer = make_optimizer(task, model, task.finder_range[0])
    loader = make_loader(task, data, seed)
    tlf = run_torch_lr_finder(model, optimizer, make_loss(task), loader, sweep_of(task), task.name)
    return {"lightning": lit["suggestion"], "torch_lr_finder": tlf["suggestion"]}


# ---------------------------------------------------------------------------------------------------------------
# scoring


def gaps(loss: float, acc: float | None, best: dict, base: tuple[float, float | None]) -> dict:
    l0, a0 = base
    gap = 1.0 if not math.isfinite(loss) else min(1.0, (loss - best["loss"]) / (l0 - best["loss"]))
    out = {"loss": loss if math.isfinite(loss) else None, "gap": gap}
    if acc is not None and "acc" in best:
        out.update(acc=acc, acc_gap=min(1.0, (best["acc"] - acc) / (best["acc"] - a0)))
    return out


def score_lr(oracle: Lattice, task: HorizonTask, data, lr: float | None, best: dict, base) -> dict:
    if lr is None or not math.isfinite(lr) or lr <= 0:
        out = {"lr": None, "gap": 1.0, "decades": None}
        if "acc" in best:
            out["acc_gap"] = 1.0
        return out
    return {"lr": lr, "decades": math.log10(lr / best["lr"]), **gaps(*oracle.at(task, data, lr), best, base)}


def run_task(task: HorizonTask, oracle: Lattice, seeds: list[int]) -> dict:
    started = time.perf_counter()
    log.info("%s (%s, %s): building data and oracle", task.name, task.group, task.split)
    data = make_data(task)
    base = oracle.untrained(task, data)
    oracle.build(task, data)
    best = oracle.best(task)
    log.info("%s: grid best lr %.2e, L* %.4f, L(untrained) %.4f", task.name, best["lr"], best["loss"], base[0])
    instead = {m: gaps(*oracle.instead(task, data, m), best, base) for m in INSTEAD}
    oracle.save()
    runs = []
    for seed in seeds:
        ours = run_ours(task, data, seed)
        suggestions = dict(ours["suggestions"])
        if task.anchors:
            suggestions |= run_anchors(task, data, seed)
        scores = {name: score_lr(oracle, task, data, lr, best, base) for name, lr in suggestions.items()}
        oracle.save()
        runs.append({"seed": seed, "scores": scores, **{k: v for k, v in ours.items() if k != "suggestions"}})
        log.info(
            "%s seed %d: ours %.2e (gap %.3f, %d steps) %s", task.name, seed, suggestions["ours"] or float("nan"),
            scores["ours"]["gap"], ours["forward_calls"], {k: round(v["gap"], 3) for k, v in scores.items()},
        )  # fmt: skip
    points = oracle.evaluated(task)
    return {
        "task": task.name,
        "group": task.group,
        "split": task.split,
        "key": task.key(),
        "steps": task.steps,
        "schedule": task.schedule,
        "num_training": task.num_training,
        "grid": {f"{10 ** (k / 4):.3e}": list(points[k]) for k in sorted(points)},
        "best": best,
        "untrained": list(base),
        "instead": instead,
        "runs": runs,
        "seconds": time.perf_counter() - started,
    }


# ---------------------------------------------------------------------------------------------------------------
# tables


def _cell(scores: list[dict], key: str = "gap", decades: bool = True) -> str:
    values = [s[key] for s in scores if key in s]
    if not values:
        return "–"
    text = f"{statistics.median(values):.3f} / {max(values):.3f}"
    dec = [s["decades"] for s in scores if s.get("decades") is not None]
    if decades and dec:
        text += f" ({statistics.median(dec):+.2f})"
    return text


def spread(run_list: list[dict]) -> float | None:
    lrs = [r["scores"]["ours"]["lr"] for r in run_list if r["scores"]["ours"]["lr"]]
    return (math.log10(max(lrs)) - math.log10(min(lrs))) if len(lrs) == len(run_list) and lrs else None


def quality_table(results: list[dict], key: str = "gap") -> str:
    """One row per task; finders: median / worst over seeds (median signed decades); not tuning: one value."""
    head = [LABELS[f] for f in FINDERS] + [LABELS[m] for m in INSTEAD]
    metric = "loss" if key == "gap" else "accuracy"
    lines = [
        f"| task ({metric} best lr) | " + " | ".join(head) + " | ours spread (dec) |",
        "|---|" + "---|" * (len(head) + 1),
    ]
    for split in ("design", "holdout"):
        members = [t for t in results if t["split"] == split]
        if not members:
            continue
        for t in members:
            best_lr = t["best"]["lr"] if key == "gap" else t["best"]["acc_lr"]
            cells = [_cell([r["scores"][f] for r in t["runs"] if f in r["scores"]], key) for f in FINDERS]
            cells += [f"{t['instead'][m][key]:.3f}" if key in t["instead"][m] else "–" for m in INSTEAD]
            s = spread(t["runs"])
            cells.append("–" if s is None else f"{s:.2f}")
            lines.append(f"| {t['task']} ({best_lr:.1e}) | " + " | ".join(cells) + " |")
        pooled = [
            _cell([r["scores"][f] for t in members for r in t["runs"] if f in r["scores"]], key, decades=False)
            for f in FINDERS
        ]
        pooled += [_cell([t["instead"][m] for t in members], key, decades=False) for m in INSTEAD]
        spreads = [s for s in (spread(t["runs"]) for t in members) if s is not None]
        pooled.append(f"{statistics.median(spreads):.2f} (median)" if spreads else "–")
        lines.append(f"| **{split}: median / worst** | " + " | ".join(pooled) + " |")
    return "\n".join(lines)


def cost_table(results: list[dict]) -> str:
    lines = [
        "| task | split | budget (steps, schedule) | ours: steps median / max (× num_training) | ours wall s (median) "
        "| findings (seeds) |",
        "|---|---|---|---|---|---|",
    ]
    ratios = []
    for t in results:
        steps, n = [r["forward_calls"] for r in t["runs"]], t["num_training"]
        ratios += [s / t["num_training"] for s in steps]
        counts: dict[str, int] = {}
        for r in t["runs"]:
            for code in r["findings"]:
                counts[code] = counts.get(code, 0) + 1
        found = ", ".join(f"{c} ({n})" for c, n in sorted(counts.items())) or "–"
        lines.append(
            f"| {t['task']} | {t['split']} | {t['steps']}, {t['schedule']} | {statistics.median(steps):.0f} / "
            f"{max(steps)} ({statistics.median(steps) / n:.2f}× / {max(steps) / n:.2f}×)"
            f" | {statistics.median(r['seconds'] for r in t['runs']):.1f} | {found} |"
        )
    if ratios:
        lines.append(f"| **all** | | | **{statistics.median(ratios):.2f}× / {max(ratios):.2f}×** | | |")
    return "\n".join(lines)


def report(results: list[dict]) -> str:
    out = []
    for group in GROUPS:
        members = [t for t in results if t["group"] == group]
        if not members:
            continue
        out.append(f"\n### Group `{group}`: normalised loss gap, median / worst over finder seeds (median Δdecades)\n")
        out.append(quality_table(members))
        if any("acc" in t["best"] for t in members) and group == "app":
            out.append(f"\n### Group `{group}`: normalised accuracy gap (same runs)\n")
            out.append(quality_table(members, key="acc_gap"))
    out.append("\n### Cost of our finder and its findings\n")
    out.append(cost_table(results))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", default=",".join(GROUPS), help=f"comma-separated subset of {list(GROUPS)}")
    parser.add_argument("--tasks", help=f"comma-separated task names (overrides --group): {sorted(TASKS_BY_NAME)}")
    parser.add_argument("--seeds", type=int, default=5, help="finder seeds per task (default 5)")
    parser.add_argument("--holdout", action="store_true", help="measure the hold-out tasks instead of the design ones")
    parser.add_argument("--refresh-oracles", action="store_true", help="recompute the selected tasks' cached oracles")
    parser.add_argument("--out", type=Path, help="JSON output path")
    args = parser.parse_args(argv)
    groups = args.group.split(",")
    if unknown := set(groups) - set(GROUPS):
        parser.error(f"unknown group(s) {sorted(unknown)}; known: {list(GROUPS)}")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.tasks:
        if unknown := set(args.tasks.split(",")) - set(TASKS_BY_NAME):
            parser.error(f"unknown task(s) {sorted(unknown)}; known: {sorted(TASKS_BY_NAME)}")
        tasks = [TASKS_BY_NAME[n] for n in args.tasks.split(",")]
    else:
        split = "holdout" if args.holdout else "design"
        tasks = [t for t in TASKS if t.group in groups and t.split == split]
    if not tasks:
        parser.error("no task selected (the hold-out tasks may not be defined yet)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    quiet_loggers()
    torch.set_num_threads(1)

    oracle = Lattice()
    if args.refresh_oracles:
        for task in tasks:
            oracle.refresh(task)
    seeds = list(range(100, 100 + args.seeds))
    started = time.perf_counter()
    results = []
    command = "python -m benchmarks.lr_horizon " + " ".join(sys.argv[1:] if argv is None else argv)
    out = args.out or RESULTS / ("lr_horizon_holdout.json" if args.holdout else "lr_horizon.json")
    for i, task in enumerate(tasks, 1):
        log.info("[%d/%d] %s", i, len(tasks), task.name)
        results.append(run_task(task, oracle, seeds))
        text, seconds = report(results), time.perf_counter() - started
        record = {"command": command, "seconds": seconds, "finder_seeds": seeds, "tables": text, "tasks": results}
        out.write_text(json.dumps(record, indent=1))  # after every task: an interrupted run keeps what it measured
    print(text)
    print(f"\n`{command}`: {seconds:.0f} s wall")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
