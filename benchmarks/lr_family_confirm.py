"""The finder + the confirmation by training on the task families (issue 26's question: finder + confirmation as the
default at the users' horizon).

``lr_confirm`` measured the confirmation on the horizon tasks; the families of ``benchmarks/family_tasks.py`` (8, 4
of them held out when they were built) had only the finder alone measured (worst gap at the users' horizon 0.202,
``forecast_long_sgd_momentum``). Here the same confirmation runs on the families' long constant-LR and OneCycle tasks
(1500-3000 steps): ``find_lr`` as users call it (the task's range and ``num_training``; its default suggestion),
then ``lr_confirm.confirm`` -- the core's ``plan_confirmation`` / ``survivors`` / ``decide`` -- with trials from the
seed's own start on the family's model, optimizer, schedule (compressed to the rung) and loader, scored on a
validation split the oracle never sees (the first half of ``n_eval`` training samples held out, as ``lr_confirm``
does). Scores: the gap of the finder's LR and of the confirmed LR to the family oracle's grid (``family_tasks.gap``,
cached; 0 = the grid's best, 1 = useless), the cost in training steps as a percentage of the task's.

Nothing of the finder or the confirmation was chosen on these families' confirmation (this is its first run on
them); the hold-out families were committed in ``1064a7b`` and their curves were read before (so they are "seen"
for the finder, not for the confirmation).

Run: ``python -m benchmarks.lr_family_confirm [--split design|holdout] [--tasks a,b] [--seeds 5] [--budget 0.1]``;
writes ``benchmarks/results/lr_family_confirm[_<split>].json`` and prints ``lr_finetune_confirm``'s tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from benchmarks import family_oracle as fo
from benchmarks import family_tasks as fam
from benchmarks import lr_confirm
from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.finders import Sweep, run_ours
from benchmarks.lr_confirm import TrialRuns
from benchmarks.lr_finetune_confirm import per_seed, table
from benchmarks.lr_tasks import TaskData
from traenslenzor.tuner import (
    DEFAULT_CONFIRM_CANDIDATES,
)

log = logging.getLogger("lr_family_confirm")
SEED0 = 100


class FamilyTrialRuns(TrialRuns):
    """``lr_confirm.TrialRuns`` with the family task's model, optimizer, loader, loss and evaluation."""

    kit = SimpleNamespace(make_model=fam.make_model, make_optimizer=fam.make_optimizer, make_loader=fam.make_loader,
                          make_loss=fam.make_loss, evaluate=fo.evaluate)  # fmt: skip


def validation_split(data: TaskData, task: fam.FamilyTask) -> TaskData:
    n = len(data.x_eval) // 2
    return TaskData(data.x_train[n:], data.y_train[n:], data.x_train[:n], data.y_train[:n])


def score(task: fam.FamilyTask, lr: float | None) -> dict:
    best = fam.best_lr(task)
    decades = math.log10(lr / best) if lr and math.isfinite(lr) and lr > 0 else None
    return {"lr": lr, "gap": fam.gap(task, lr), "decades": decades}


def run_task(task: fam.FamilyTask, seeds: list[int], args) -> dict:
    started = time.perf_counter()
    data = fam.make_data(task)
    trial_data = validation_split(data, task)
    runs = []
    for seed in seeds:
        model = fam.make_model(task, seed)
        ours = run_ours(model, fam.make_optimizer(task, model, task.finder_range[0]), fam.make_loss(task),
                        fam.make_loader(task, data, seed), Sweep(*task.finder_range, task.num_training))  # fmt: skip
        result, suggestion = ours["result"], ours["result"].suggestion()
        confirmation = None
        if suggestion is not None:
            confirmation = lr_confirm.confirm(task, trial_data, seed, result, suggestion, args, runner=FamilyTrialRuns)
        confirmed = None if confirmation is None else confirmation["confirmed"]
        scores = {"finder": score(task, suggestion), "confirmed": score(task, confirmed)}
        runs.append({"seed": seed, "scores": scores, "confirmation": confirmation})
        said = "-" if confirmation is None else confirmation.get("refused") or confirmation["verdict"]["reason"]
        cost = "-" if confirmation is None else f"{confirmation['cost_percent']:.1f}"
        log.info("%s seed %d: finder %.2e (gap %.3f) -> confirmed %s (gap %.3f), cost %s %%: %s", task.name, seed,
                 suggestion or math.nan, scores["finder"]["gap"], "none" if confirmed is None else f"{confirmed:.2e}",
                 scores["confirmed"]["gap"], cost, said)  # fmt: skip
    return {"task": task.name, "family": task.family, "split": task.split, "schedule": task.schedule,
            "steps": task.steps, "best": {"lr": fam.best_lr(task)}, "runs": runs,
            "seconds": time.perf_counter() - started}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("design", "holdout"))
    parser.add_argument("--tasks", default="", help="task names (default: the long and OneCycle tasks)")
    parser.add_argument("--seeds", type=int, default=5)
    lr_confirm.add_confirmation_arguments(parser, budget=0.1, candidates=DEFAULT_CONFIRM_CANDIDATES)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    wanted = [n for n in args.tasks.split(",") if n]
    tasks = [t for t in fam.FAMILY_TASKS if (t.name in wanted if wanted else "_short_" not in t.name)
             and args.split in (None, t.split)]  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    quiet_loggers()
    torch.set_num_threads(1)
    seeds = list(range(SEED0, SEED0 + args.seeds))
    out = args.out or RESULTS / ("lr_family_confirm" + (f"_{args.split}" if args.split else "") + ".json")
    command = "python -m benchmarks.lr_family_confirm " + " ".join(sys.argv[1:] if argv is None else argv)
    started, results = time.perf_counter(), []
    for task in tasks:
        results.append(run_task(task, seeds, args))
        record = {
            "command": command,
            "seconds": time.perf_counter() - started,
            "settings": lr_confirm.confirmation_settings(args),
            "finder_seeds": seeds,
            "tasks": results,
        }
        out.write_text(json.dumps(record, indent=1))  # fmt: skip
    print(table(results))
    print()
    print(per_seed(results))
    print(f"\n`{command}`: {time.perf_counter() - started:.0f} s wall; wrote {out}")


if __name__ == "__main__":
    main()
