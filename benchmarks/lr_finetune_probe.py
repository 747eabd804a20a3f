"""The fixed-batch probe on held-out data, on fine-tuning: does a held-out probe see what the training loss hides?

``lr_finetune`` found a few-shot whole-model task (``convnext_fewshot_whole_adamw``) where every finder read ~1.3
decades above the grid's best LR: its 96 training examples' loss keeps falling where the held-out loss already
rises above the untrained one. The default reading reads the loss of a few **training** batches set aside
(``find_lr``'s probe). ``find_lr(probe_loader=...)`` takes the probe's batches from another loader instead; here,
validation data (``lr_finetune_confirm.validation_split``: held out of the training set, or for a few-shot task
examples the few-shot set left out; never the oracle's evaluation set).

For each fine-tuning task and finder seed (100, 101, ...), two runs of ``find_lr`` from the same start, on the
same training data (the validation split's training part, so that neither arm trains on the probe's samples): the
default probe (4 training batches set aside) and the held-out probe (the first 4 batches of a shuffled loader over
the validation samples, the task's batch size). Each run's ``blend``, ``wall`` and ``stable`` are scored as
``lr_finetune`` scores (gap to the task's cached grid oracle: 0 = the grid's best, 1 = useless) with signed
decades from the best. ``stable`` reads the training loss, so it should not move; ``wall`` reads the probe.

The tasks: ``lr_finetune``'s design families (cnn, vit, mlp); the ``gru`` and ``convnext`` tasks are no longer
hold-outs here (their results motivated this run) and are reported as **seen**; the ``tcn`` family is the
hold-out of this question, committed with this module before anything was measured on it.

Run: ``python -m benchmarks.lr_finetune_probe [--tasks a,b] [--seeds 5] [--out PATH]``; writes
``benchmarks/results/lr_finetune_probe.json`` and prints markdown.
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

import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks import finetune_tasks as ft
from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.finders import run_ours
from benchmarks.lr_finetune import SEED0, sweep_of
from benchmarks.lr_finetune_confirm import validation_split
from benchmarks.lr_reading import _horizon_gap

log = logging.getLogger("lr_finetune_probe")
READINGS = ("blend", "wall", "stable")
ARMS = ("training probe", "held-out probe")


def split_of(task: ft.FinetuneTask) -> str:
    return {"design": "design", "holdout": "seen"}.get(task.split, task.split) if task.family != "tcn" else "holdout"


def held_out_loader(task: ft.FinetuneTask, val: ft.TaskData, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed + 10_000)
    return DataLoader(TensorDataset(val.x_eval, val.y_eval), batch_size=task.batch_size, shuffle=True,
                      generator=generator)  # fmt: skip


def run_arm(task: ft.FinetuneTask, split: ft.TaskData, seed: int, held_out: bool) -> dict:
    model = ft.make_model(task, seed)
    options = {"probe_loader": held_out_loader(task, split, seed)} if held_out else {}
    ours = run_ours(model, ft.make_optimizer(task, model, task.finder_range[0]), ft.make_loss(task),
                    ft.make_loader(task, split, seed), sweep_of(task), **options)  # fmt: skip
    result = ours["result"]
    return {name: result.suggestion(method=name) for name in READINGS}


def run_task(task: ft.FinetuneTask, lattice: ft.FinetuneLattice, seeds: list[int]) -> dict:
    started = time.perf_counter()
    split = validation_split(task, ft.make_data(task))
    if not lattice.has(task):
        ft.compute_oracle(lattice, [task])
    best = lattice.best(task)["lr"]
    runs = []
    for seed in seeds:
        run = {"seed": seed}
        for arm in ARMS:
            lrs = run_arm(task, split, seed, held_out=arm == "held-out probe")
            run[arm] = {
                name: {"lr": lr, "gap": _horizon_gap(lattice, task, lr),
                       "decades": math.log10(lr / best) if lr else None}
                for name, lr in lrs.items()
            }  # fmt: skip
        runs.append(run)
        log.info("%s seed %d: blend %.2e (%.3f) -> held-out %.2e (%.3f)", task.name, seed,
                 run[ARMS[0]]["blend"]["lr"] or math.nan, run[ARMS[0]]["blend"]["gap"],
                 run[ARMS[1]]["blend"]["lr"] or math.nan, run[ARMS[1]]["blend"]["gap"])  # fmt: skip
    return {"task": task.name, "family": task.family, "split": split_of(task), "phase": task.phase,
            "best_lr": best, "runs": runs, "seconds": time.perf_counter() - started}  # fmt: skip


def _cell(runs: list[dict], arm: str, name: str) -> str:
    gaps = [r[arm][name]["gap"] for r in runs]
    decades = [r[arm][name]["decades"] for r in runs if r[arm][name]["decades"] is not None]
    signed = f"{statistics.median(decades):+.2f}" if decades else "-"
    return f"{statistics.median(gaps):.3f} / {max(gaps):.3f} ({signed})"


def table(results: list[dict]) -> str:
    head = " | ".join(f"{n}: {a}" for a in ARMS for n in READINGS)
    lines = [f"| task | split | phase | best LR | {head} |", "|---" * (4 + len(ARMS) * len(READINGS)) + "|"]
    for split in ("design", "seen", "holdout"):
        rows = [r for r in results if r["split"] == split]
        for r in rows:
            cells = " | ".join(_cell(r["runs"], a, n) for a in ARMS for n in READINGS)
            lines.append(f"| {r['task']} | {split} | {r['phase']} | {r['best_lr']:.1e} | {cells} |")
        if rows:
            pooled = [run for r in rows for run in r["runs"]]
            cells = " | ".join(_cell(pooled, a, n) for a in ARMS for n in READINGS)
            lines.append(f"| **{split}: all** | | | | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "lr_finetune_probe.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    quiet_loggers()
    tasks = [ft.TASKS_BY_NAME[n] for n in args.tasks.split(",")] if args.tasks else [*ft.TASKS, *ft.PROBE_HOLDOUT_TASKS]
    lattice, seeds = ft.FinetuneLattice(), list(range(SEED0, SEED0 + args.seeds))
    started, results = time.perf_counter(), []
    for task in tasks:
        results.append(run_task(task, lattice, seeds))
        Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=1))
    print(table(results))
    print(f"\n`python -m benchmarks.lr_finetune_probe {' '.join(argv or sys.argv[1:])}`: "
          f"{time.perf_counter() - started:.0f} s wall; wrote {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
