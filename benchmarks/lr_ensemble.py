"""Does spending 3 sweeps instead of 1 make the LR suggestion stable from run to run? (issue 11.1 / 11.3)

Question: the run-to-run spread of ``stable`` (``lr_spread.py``: median 0.34 decades over the 32 tasks, bar 0.2)
comes from the seed: model init and batch order. A tuner that may spend up to 3 x ``num_training`` steps (the
issue's budget for confirmation) can run 3 sweeps from the same restored model with 3 batch orders and combine them.
Two combinations, neither with a knob fitted to this suite:

* ``median3``: the median (in log LR) of the 3 sweeps' ``stable`` suggestions;
* ``pooled3``: ``stable`` read off the mean of the 3 smoothed curves (same LR schedule; the EMA is linear, so this is
  the EMA of the mean raw loss), over their common length.

For every task of ``lr_tasks.TASKS`` and 15 finder seeds (100-114), ``find_lr`` runs with its defaults (adaptive
range). ``single`` uses seeds 100-104 (as ``lr_spread.py``); ``median3`` and ``pooled3`` use 5 disjoint triples
(100-102, ..., 112-114), so every row has 5 answers per task. Here a triple's sweeps differ in model init *and*
batch order (each seed is a fresh model): harder than the tuner's case, where only the batch order would differ.
Cells: median / worst gap read off the oracle grid (``lr_quality.grid_gap``, no training), median spread (max - min
of log10 suggestion over the 5 answers, in decades). All tasks were seen before (design and earlier hold-outs):
nothing here is an unseen test, and nothing is fitted.

Run: ``python -m benchmarks.lr_ensemble [--out PATH]`` (~10 min on 2 cores; the grid comes from the oracle cache).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import RESULTS
from benchmarks.lr_quality import grid_gap, grid_oracle, oracle_grid
from benchmarks.lr_tasks import GROUPS, TASKS, make_data, make_loader, make_loss, make_model, make_optimizer
from traenslenzor.tuner import find_lr
from traenslenzor.tuner.lr.suggestion import suggest

SEEDS = range(100, 115)
OUT = RESULTS / "lr_ensemble.json"


def _log_median(values: list[float | None]) -> float | None:
    logs = sorted(math.log10(v) for v in values if v)
    return 10 ** statistics.median(logs) if len(logs) == len(values) else None


def _pooled(curves: list[tuple[list[float], list[float], float]]) -> float | None:
    n = min(len(lrs) for lrs, _, _ in curves)
    mean = np.mean([np.asarray(losses[:n], float) for _, losses, _ in curves], axis=0)
    lrs, beta = curves[0][0][:n], curves[0][2]
    return suggest(list(lrs), [float(v) for v in mean], method="stable", beta=beta).lr


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help="JSON output path")
    out = parser.parse_args(argv).out
    logging.getLogger("traenslenzor").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    oracle = grid_oracle()
    per_task: dict = {}
    for task in TASKS:
        data = make_data(task)
        grid = oracle_grid(oracle, task, data)
        curves, singles = [], []
        for seed in SEEDS:
            model = make_model(task, seed)
            optimizer = make_optimizer(task, model.parameters(), task.finder_range[0])
            result = find_lr(
                model, optimizer, make_loss(task), make_loader(task, data, seed),
                min_lr=task.finder_range[0], max_lr=task.finder_range[1], num_training=task.num_training,
                progress_bar=False,
            )  # fmt: skip
            curves.append((list(result.lrs), list(result.losses), result.beta))
            singles.append(result.suggestion())
        triples = [range(i, i + 3) for i in range(0, len(SEEDS), 3)]
        answers = {
            "single": singles[:5],
            "median3": [_log_median([singles[i] for i in t]) for t in triples],
            "pooled3": [_pooled([curves[i] for i in t]) for t in triples],
        }
        per_task[task.name] = {}
        for name, values in answers.items():
            logs = [math.log10(v) for v in values if v]
            spread = max(logs) - min(logs) if len(logs) == len(values) else math.inf
            per_task[task.name][name] = {
                "lrs": values,
                "gaps": [grid_gap(grid, v) for v in values],
                "spread": spread,
            }
        print(f"{task.name} done", file=sys.stderr, flush=True)
        out.write_text(json.dumps(per_task, indent=1))
    groups = {**GROUPS, "all": tuple(task.name for task in TASKS)}
    print(f"finder seeds {SEEDS.start}-{SEEDS.stop - 1}; cells: median / worst grid gap, median spread (decades)\n")
    print("| combination | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for name in ("single", "median3", "pooled3"):
        cells = []
        for members in groups.values():
            gaps = [g for t in members for g in per_task[t][name]["gaps"]]
            spreads = [per_task[t][name]["spread"] for t in members]
            cells.append(f"{statistics.median(gaps):.3f} / {max(gaps):.3f}, {statistics.median(spreads):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
