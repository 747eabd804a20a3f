"""Run-to-run spread of the LR suggestion (issue 11.1), fixed vs adaptive range, scored on the oracle grid.

For every task of ``lr_tasks.TASKS`` and 5 finder seeds, ``find_lr`` runs with the fixed range
(``adaptive_range=None``) and with the default adaptive range. Per rule: the *spread* is max - min of log10 of the
suggestion over the seeds (decades; a missing suggestion makes it inf), the gap is the oracle grid's loss
interpolated in log LR (``lr_quality.grid_gap``: no training, so cheaper and a little rougher than table 1). One
exploratory reader is added beside the registered rules: ``centred`` locates the rise on a zero-lag centred
smoothing of the raw loss (running median, then a running mean, both of half-width 5 points) and goes 0.9
decades below it. It is NOT a registered rule; its half-width and offset were only looked at on this suite.

Run: ``python -m benchmarks.lr_spread`` (~5 min on 2 cores; the grid comes from the oracle cache). Prints markdown;
writes ``benchmarks/results/lr_spread.json`` (``--out`` another path): the table, the per-task gaps and spreads, the
cost of the adaptive range.
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
from traenslenzor.tuner.lr.curve import final_valley, rise_onset
from traenslenzor.tuner.lr.suggestion import SUGGESTIONS, suggest

SEEDS = range(100, 105)


def centred(lrs: list[float], raw: list[float], half: int = 5, below: float = 0.9) -> float | None:
    """The exploratory zero-lag reader (see the module docstring)."""
    x_all, y_all = np.log10(np.asarray(lrs, float)), np.asarray(raw, float)
    ok = np.isfinite(y_all)
    x, y = x_all[ok], y_all[ok]
    med = np.array([np.median(y[max(0, i - half) : i + half + 1]) for i in range(y.size)])
    smooth = np.array([med[max(0, i - half) : i + half + 1].mean() for i in range(y.size)])
    keep = np.arange(10, max(10, y.size - 1))
    if keep.size < 3:
        return None
    curve, xs = smooth[keep], x[keep]
    valley = final_valley(curve)
    if valley is None or valley[1] == 0:
        return None
    resid = y[keep] - curve
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) / math.sqrt(2 * half + 1)
    onset = rise_onset(curve, valley[0], noise)
    return float(10 ** xs[int(np.argmin(np.abs(xs - (xs[onset] - below))))])


def spread_table(rows: dict, steps: dict, extended: dict) -> str:
    """Per range and reader: median / worst grid gap and median spread per task group; the adaptive range's cost."""
    groups = {**GROUPS, "all": tuple(task.name for task in TASKS)}
    lines = [
        f"finder seeds {list(SEEDS)}; cells: median / worst grid gap, median spread (decades) over the tasks\n",
        "| range | reader | " + " | ".join(groups) + " |",
        "|---|---|" + "---|" * len(groups),
    ]
    for (mode, name), per_task in rows.items():
        cells = []
        for members in groups.values():
            gaps = [g for t in members for g in per_task[t][0]]
            spreads = [per_task[t][1] for t in members]
            cells.append(f"{statistics.median(gaps):.3f} / {max(gaps):.3f}, {statistics.median(spreads):.2f}")
        lines.append(f"| {mode} | {name} | " + " | ".join(cells) + " |")
    cost = [
        f"\n{mode}: {extended[mode]} of {len(ratios)} runs widened the range; total steps / num_training "
        f"median {statistics.median(ratios):.2f}, max {max(ratios):.2f}"
        for mode, ratios in steps.items()
    ]
    return "\n".join([*lines, *cost])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "lr_spread.json", help="JSON output path")
    args = parser.parse_args(argv)
    logging.getLogger("traenslenzor").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    oracle = grid_oracle()
    readers = [*SUGGESTIONS, "centred"]
    rows: dict = {}  # (mode, reader) -> task -> (gaps, spread)
    steps: dict = {"fixed": [], "adaptive": []}
    extended = {"fixed": 0, "adaptive": 0}
    for task in TASKS:
        data = make_data(task)
        grid = oracle_grid(oracle, task, data)
        for mode in ("fixed", "adaptive"):
            answers: dict = {name: [] for name in readers}
            for seed in SEEDS:
                model = make_model(task, seed)
                optimizer = make_optimizer(task, model.parameters(), task.finder_range[0])
                extra = {} if mode == "adaptive" else {"adaptive_range": None}
                result = find_lr(
                    model, optimizer, make_loss(task), make_loader(task, data, seed),
                    min_lr=task.finder_range[0], max_lr=task.finder_range[1], num_training=task.num_training,
                    progress_bar=False, **extra,
                )  # fmt: skip
                steps[mode].append(result.metadata.get("total_steps", len(result.lrs)) / task.num_training)
                extended[mode] += bool(result.metadata.get("adaptive_range"))
                for name in SUGGESTIONS:
                    answers[name].append(suggest(result.lrs, result.losses, method=name, beta=result.beta).lr)
                answers["centred"].append(centred(list(result.lrs), list(result.raw_losses)))
            for name, values in answers.items():
                logs = [math.log10(v) for v in values if v]
                spread = max(logs) - min(logs) if len(logs) == len(values) else math.inf
                rows.setdefault((mode, name), {})[task.name] = ([grid_gap(grid, v) for v in values], spread)
        print(f"{task.name} done", file=sys.stderr, flush=True)
    table = spread_table(rows, steps, extended)
    print(table)
    record = {
        "finder_seeds": list(SEEDS),
        "table": table,
        "tasks": {
            f"{mode}|{name}": {task: {"gaps": gaps, "spread": spread} for task, (gaps, spread) in per_task.items()}
            for (mode, name), per_task in rows.items()
        },
        "total_steps_over_num_training": steps,
        "extended": extended,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
