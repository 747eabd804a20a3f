"""The finder's LR confirmed by training, on fine-tuning: does it rescue the tasks the range test misreads?

``lr_confirm`` measures the app's LR confirmation (successive halving over a few candidate LRs, scored on a
validation split) on the horizon tasks; this module applies the same confirmation to the fine-tuning tasks of
``benchmarks.finetune_tasks`` (pretrained starts, frozen or whole-model phases, per-group LRs), where
``lr_finetune`` found range tests that misread: on the hold-out ``convnext_fewshot_whole_adamw`` every finder
reads ~1.3 decades above the grid's best LR (gap 1.0). For each task and each finder seed (100, 101, ...):

1. **The finder**, as ``lr_finetune.run_finders`` runs ours (``find_lr`` on ``make_model(task, seed)``, the task's
   optimizer at the bottom of its range, its loader, range and ``num_training``); its default suggestion ``s``
   (``blend``), the one ``lr_finetune`` scores.
2. **The confirmation**, with the core's pure functions (``traenslenzor.tuner.plan_confirmation``: candidates on
   the quarter-decade lattice around ``s`` -- or the finder's band -- below the curve's wall, the finder's LR among
   them; successive-halving rungs within ``--budget`` of the task's steps; ``survivors`` and ``decide`` at
   ``--margin``), as ``lr_confirm.confirm`` drives them. Each trial trains the task's start from the seed
   (``make_model(task, seed)``: the same head init and batch order for every candidate) with the task's optimizer
   at the candidate's head LR (the backbone's groups keep their ratio) and its schedule compressed to the rung's
   steps; a constant-LR task continues its survivors' runs. Trials are scored on a **validation** split that the
   oracle's evaluation set never overlaps (``validation_split``): the first 512 training samples (trials train on
   the rest) or, for a few-shot task, 512 samples of the family's target pool that the few-shot selection left
   out. A plan whose first-rung trials would be shorter than ``--min-steps`` is refused (``TrialsTooShort``): the
   finder's LR is kept, not decided, at no cost -- these tasks are short (150-600 steps).
3. **Scores** as ``lr_finetune`` scores (``lr_reading._horizon_gap`` on the cached ``FinetuneLattice`` oracle: 0 =
   the grid's best, 1 = useless), for the confirmed LR and for the finder alone from the same run, and the signed
   decades ``log10(lr / best)`` from the oracle's best LR. **Cost**: training steps of all trials as a percentage
   of the task's steps (an upper bound: a diverged trial is counted in full). The oracle is read from
   ``benchmarks/results/finetune_oracle_cache.json`` and never trained or written here.

Run from the repo root: ``python -m benchmarks.lr_finetune_confirm [--split design|holdout] [--tasks a,b]
[--seeds 5] [--budget 0.5] [--candidates 4]`` (``--reduction``, ``--margin``, ``--min-steps``). Writes
``benchmarks/results/lr_finetune_confirm.json`` (or ``--out``) after every task and prints markdown tables.
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

from benchmarks import finetune_tasks as ft
from benchmarks import lr_confirm
from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.finders import run_ours
from benchmarks.lr_confirm import TrialRuns, _worse, add_confirmation_arguments, confirmation_settings, per_seed
from benchmarks.lr_finetune import SEED0, sweep_of
from benchmarks.lr_reading import _horizon_gap
from benchmarks.lr_tasks import TaskData

log = logging.getLogger("lr_finetune_confirm")
VALIDATION = 512  # validation samples of the trials
TARGET_POOL = 4096  # ``target_data``'s ``n_train``: the target pool the few-shot sets are drawn from
DEFAULT_BUDGET = 0.5  # the app's 0.25 x 6 candidates refuses on every task here (first rungs under 10 steps)
DEFAULT_CANDIDATES = 4


def validation_split(task: ft.FinetuneTask, data: TaskData) -> TaskData:
    """The trials' data: what they train on and a validation split that the oracle's ``x_eval`` never overlaps.

    Full training set (``shots`` None): the first ``VALIDATION`` training samples validate, the trials train on the
    rest. Few-shot (``shots`` set): the trials train on the task's few-shot set; the validation split is the first
    ``VALIDATION`` samples of the family's target pool (``side_data(family, "target", ...)[:TARGET_POOL]``,
    regenerated as ``target_data`` does) that the few-shot selection did not keep. Either way the oracle's held-out
    set (the samples after the pool) is never used by a trial.
    """
    if task.shots is None:
        n = VALIDATION
        return TaskData(data.x_train[n:], data.y_train[n:], data.x_train[:n], data.y_train[:n])
    x, y = ft.side_data(task.family, "target", TARGET_POOL + len(data.x_eval))
    x_pool, y_pool = x[:TARGET_POOL], y[:TARGET_POOL]
    keep = torch.cat(
        [torch.nonzero(y_pool == c).flatten()[: task.shots] for c in range(ft.TARGET_CLASSES[task.family])]
    )
    if not (torch.equal(x_pool[keep], data.x_train) and torch.equal(x[TARGET_POOL:], data.x_eval)):
        raise RuntimeError(f"{task.name}: the regenerated target pool differs from target_data's")
    left = torch.ones(TARGET_POOL, dtype=torch.bool)
    left[keep] = False
    val = torch.nonzero(left).flatten()[:VALIDATION]
    return TaskData(data.x_train, data.y_train, x_pool[val], y_pool[val])


def run_finder(task: ft.FinetuneTask, data: TaskData, seed: int):
    """Ours as ``lr_finetune.run_finders`` calls it; (result, default suggestion or None, seconds)."""
    model = ft.make_model(task, seed)
    ours = run_ours(model, ft.make_optimizer(task, model, task.finder_range[0]), ft.make_loss(task),
                    ft.make_loader(task, data, seed), sweep_of(task))  # fmt: skip
    return ours["result"], ours["result"].suggestion(), ours["seconds"]


class FinetuneTrialRuns(TrialRuns):
    """``lr_confirm.TrialRuns`` with the fine-tuning task's start, optimizer (head LR, backbone groups at their
    ratio), schedule (compressed to the rung's steps) and evaluation."""

    kit = ft

    def scheduler(self, optimizer, lr: float, steps: int):
        return ft.scheduler_for(self.task, optimizer, lr, steps)


def confirm(task: ft.FinetuneTask, trial_data: TaskData, seed: int, result, suggestion: float, args) -> dict:
    """``lr_confirm.confirm`` with :class:`FinetuneTrialRuns`: successive halving over the plan's candidates (the
    finder's LR carried to the last rung), scored on validation; the verdict at ``args.margin``."""
    return lr_confirm.confirm(task, trial_data, seed, result, suggestion, args, runner=FinetuneTrialRuns)


def score(lattice: ft.FinetuneLattice, task: ft.FinetuneTask, lr: float | None, best_lr: float) -> dict:
    """``lr_finetune``'s gap (``_horizon_gap`` on the cached oracle) and the signed decades from the best LR."""
    decades = math.log10(lr / best_lr) if lr and math.isfinite(lr) and lr > 0 else None
    return {"lr": lr, "gap": _horizon_gap(lattice, task, lr), "decades": decades}


def run_task(task: ft.FinetuneTask, lattice: ft.FinetuneLattice, seeds: list[int], args) -> dict:
    started = time.perf_counter()
    if not lattice.has(task):  # read only: this benchmark never trains (or writes) the oracle
        raise LookupError(f"no cached oracle for {task.name!r}: `python -m benchmarks.finetune_tasks --oracle`")
    data = ft.make_data(task)
    trial_data = validation_split(task, data)
    best = lattice.best(task)
    runs = []
    for seed in seeds:
        result, suggestion, finder_seconds = run_finder(task, data, seed)
        seed_started = time.perf_counter()
        confirmation = None if suggestion is None else confirm(task, trial_data, seed, result, suggestion, args)
        confirmed = None if confirmation is None else confirmation["confirmed"]
        challenger = None if confirmation is None else confirmation.get("challenger")
        scores = {
            "finder": score(lattice, task, suggestion, best["lr"]),
            "confirmed": score(lattice, task, confirmed, best["lr"]),
            # the last rung's best other candidate: what any margin would switch to (``lr_confirm.rejudge``)
            "challenger": score(lattice, task, challenger, best["lr"]) if challenger else None,
        }
        runs.append(
            {
                "seed": seed,
                "scores": scores,
                "confirmation": confirmation,
                "finder_seconds": finder_seconds,
                "confirm_seconds": time.perf_counter() - seed_started,
            }
        )
        log.info(
            "%s seed %d: finder %.2e (gap %.3f, %s dec) -> confirmed %s (gap %.3f, %s dec), cost %s %%: %s",
            task.name, seed, suggestion or math.nan, scores["finder"]["gap"], _decades(scores["finder"]),
            "none" if confirmed is None else f"{confirmed:.2e}", scores["confirmed"]["gap"],
            _decades(scores["confirmed"]), "-" if confirmation is None else f"{confirmation['cost_percent']:.1f}",
            "-" if confirmation is None else confirmation.get("refused") or confirmation["verdict"]["reason"],
        )  # fmt: skip
    return {
        "task": task.name,
        "family": task.family,
        "split": task.split,
        "phase": task.phase,
        "schedule": task.schedule,
        "steps": task.steps,
        "best": best,
        "runs": runs,
        "seconds": time.perf_counter() - started,
    }


# --- tables ----------------------------------------------------------------------------------------------------


def _decades(s: dict) -> str:
    return "–" if s["decades"] is None else f"{s['decades']:+.2f}"


def _median_worst(values: list[float], signed: bool = False) -> str:
    form = "+.3f" if signed else ".3f"
    return f"{statistics.median(values):{form}} / {max(values):{form}}"


def _median_decades(scores: list[dict]) -> str:
    values = [s["decades"] for s in scores if s["decades"] is not None]
    return f"{statistics.median(values):+.2f}" if values else "–"


def _cells(runs: list[dict]) -> list[str]:
    finder = [r["scores"]["finder"] for r in runs]
    confirmed = [r["scores"]["confirmed"] for r in runs]
    confirmations = [r["confirmation"] for r in runs if r["confirmation"]]
    costs = [c["cost_percent"] for c in confirmations]
    return [
        _median_worst([s["gap"] for s in finder]),
        _median_worst([s["gap"] for s in confirmed]),
        _median_worst([_worse(r) for r in runs], signed=True),
        _median_decades(finder),
        _median_decades(confirmed),
        f"{sum(bool(c.get('decided')) for c in confirmations)}/{len(runs)}",
        f"{sum('refused' in c for c in confirmations)}/{len(runs)}",
        f"{statistics.median(costs):.1f} / {max(costs):.1f}" if costs else "–",
    ]


def table(results: list[dict]) -> str:
    """One row per task, then a pooled row (over tasks x seeds) per split."""
    head = ["task", "split", "steps", "best lr", "finder gap (median / worst)", "confirmed gap (median / worst)",
            "confirmed - finder (median / worst)", "finder decades (median)", "confirmed decades (median)",
            "decided", "refused", "cost % of steps (median / max)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for split in ("design", "holdout"):
        members = [t for t in results if t["split"] == split]
        for t in members:
            cells = [t["task"], split, str(t["steps"]), f"{t['best']['lr']:.1e}", *_cells(t["runs"])]
            lines.append("| " + " | ".join(cells) + " |")
        if members:
            every = [r for t in members for r in t["runs"]]
            lines.append(f"| **{split}: all** | {split} | | | " + " | ".join(_cells(every)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("design", "holdout"), help="only this split's tasks (default: both)")
    parser.add_argument("--tasks", default="", help=f"comma-separated task names: {sorted(ft.TASKS_BY_NAME)}")
    parser.add_argument("--seeds", type=int, default=5, help="finder seeds per task (default 5)")
    add_confirmation_arguments(parser, budget=DEFAULT_BUDGET, candidates=DEFAULT_CANDIDATES)
    parser.add_argument(
        "--out", type=Path, help="JSON output path (default: benchmarks/results/lr_finetune_confirm.json)"
    )
    args = parser.parse_args(argv)
    wanted = [n for n in args.tasks.split(",") if n]
    if unknown := set(wanted) - set(ft.TASKS_BY_NAME):
        parser.error(f"unknown task(s) {sorted(unknown)}")
    tasks = [t for t in ft.TASKS if (not wanted or t.name in wanted) and args.split in (None, t.split)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    quiet_loggers()
    torch.set_num_threads(1)
    lattice, seeds = ft.FinetuneLattice(), list(range(SEED0, SEED0 + args.seeds))
    out = args.out or RESULTS / "lr_finetune_confirm.json"
    command = "python -m benchmarks.lr_finetune_confirm " + " ".join(sys.argv[1:] if argv is None else argv)
    started, results = time.perf_counter(), []
    for task in tasks:
        log.info("%s (%s, %s, %d steps, %s)", task.name, task.split, task.phase, task.steps, task.schedule)
        results.append(run_task(task, lattice, seeds, args))
        record = {
            "command": command,
            "seconds": time.perf_counter() - started,
            "settings": confirmation_settings(args) | {"validation": VALIDATION},
            "finder_seeds": seeds,
            "table": table(results),
            "per_seed": per_seed(results),
            "tasks": results,
        }
        out.write_text(json.dumps(record, indent=1))  # after every task: an interrupted run keeps what it measured
    print(table(results))
    print()
    print(per_seed(results))
    print(f"\n`{command}`: {time.perf_counter() - started:.0f} s wall; wrote {out}")


if __name__ == "__main__":
    main()
