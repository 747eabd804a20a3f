"""The finder's LR confirmed by training (issue 21.5), at the users' horizon: gap, spread and cost per task.

For each task of ``horizon_tasks`` and each finder seed (the seeds of ``lr_horizon``: 100, 101, ...):

1. **The finder**, as ``lr_horizon.run_ours`` runs it (``find_lr`` on a fresh model from the seed, the task's
   optimizer, loader, range and ``num_training``; its default suggestion ``s``).
2. **The confirmation**, with the core's own pure functions (``traenslenzor.tuner.plan_confirmation``: the
   candidates on the quarter-decade lattice from ``s/10`` to ``3 s`` -- or the finder's band when its result
   carries one -- below the curve's wall, and the successive-halving rungs within ``--budget`` of the task's
   training steps; ``survivors`` picks who goes on). Each trial trains the task's model from the seed's own start
   (``horizon_tasks.train``: the same init and batch order for every candidate) with the task's optimizer and
   schedule compressed to the rung's steps, and is scored on a **validation** split that the oracle never sees:
   for the small tasks the first ``n_eval / 2`` training samples (trials train on the rest), for the app's
   documents the synthetic ``test`` split. Plain PyTorch trials, no Optuna: the app drives the same decisions
   through an Optuna study (``traenslenzor/doc_classifier/tuning/confirm/trials.py``); Optuna changes where the
   trials are stored, not which are run.
3. **Scores** with ``lr_horizon``'s cached oracle and its ``score_lr`` (gap at the task's full budget, 0 = the
   grid's best, 1 = useless), for the confirmed LR and for the finder alone from the same run; the not-tuning
   baselines (fixed default, Prodigy, Schedule-Free) as ``lr_horizon`` measured them (cached).
   **Spread**: max - min of log10(LR) over seeds, decades. **Cost**: training steps of all trials as a
   percentage of the task's budget (an upper bound: a diverged trial is counted in full).

Run from the repo root: ``python -m benchmarks.lr_confirm --group long,onecycle --seeds 5``
(``--holdout`` for the hold-out tasks, ``--tasks a,b``, ``--budget``, ``--candidates``, ``--reduction``). Writes
``benchmarks/results/lr_confirm[_holdout].json`` after every task and prints markdown tables.
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

from benchmarks import finders, horizon_tasks, lr_tasks
from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.horizon_tasks import (
    GROUPS,
    INSTEAD,
    MAX_LR_FACTOR,
    PAGE_CACHE,
    TASKS,
    TASKS_BY_NAME,
    HorizonTask,
    make_data,
    make_loader,
    make_loss,
    make_model,
    make_optimizer,
    onecycle,
)
from benchmarks.lr_horizon import LABELS, Lattice, gaps, score_lr, sweep_of
from traenslenzor.tuner import (
    DEFAULT_CONFIRM_BUDGET,
    DEFAULT_CONFIRM_CANDIDATES,
    DEFAULT_CONFIRM_MARGIN,
    MIN_TRIAL_STEPS,
    TrialsTooShort,
    decide,
    finder_band,
    finder_wall,
    plan_confirmation,
    survivors,
)

log = logging.getLogger("lr_confirm")


def validation_split(task: HorizonTask, data: lr_tasks.TaskData) -> lr_tasks.TaskData:
    """The trials' data: training samples and a validation split that the oracle's held-out set never overlaps."""
    if task.data != "documents":
        n = len(data.x_eval) // 2
        return lr_tasks.TaskData(data.x_train[n:], data.y_train[n:], data.x_train[:n], data.y_train[:n])
    from traenslenzor.doc_classifier.data.synthetic import SyntheticDocuments

    def pixels(split: str, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        pages = SyntheticDocuments(split, length, task.image_size, seed=0, cache_dir=PAGE_CACHE)
        x = torch.from_numpy(np.stack([pages.page(i) for i in range(length)])).float().div_(255)[:, None]
        return x, torch.from_numpy(pages.labels)

    raw_train, _ = pixels("train", task.n_train)  # make_data normalises with the training split's statistics
    x_val, y_val = pixels("test", task.n_eval // 2)
    return lr_tasks.TaskData(data.x_train, data.y_train, (x_val - raw_train.mean()) / raw_train.std(), y_val)


def run_finder(task: HorizonTask, data: lr_tasks.TaskData, seed: int):
    """``find_lr`` exactly as ``lr_horizon.run_ours`` calls it; (result, suggestion or None, seconds)."""
    model = make_model(task, seed)
    optimizer = make_optimizer(task, model, task.finder_range[0])
    ours = finders.run_ours(model, optimizer, make_loss(task), make_loader(task, data, seed), sweep_of(task))
    return ours["result"], ours["result"].suggestion(), ours["seconds"]


class TrialRuns:
    """The trials of one task x seed: each from the seed's own start (init and batch order); a continued trial goes
    on from its own run of the rung before -- the same model, optimizer and batch stream, so a run continued from
    ``s`` to ``3 s`` steps is the run of ``3 s`` steps. The task's pieces come from ``kit`` (a module or namespace
    with ``make_model``, ``make_optimizer``, ``make_loader``, ``make_loss`` and ``evaluate`` of the task's kind: the
    horizon tasks' here; a benchmark of other tasks sets its own, and may override ``scheduler``)."""

    kit = horizon_tasks

    def __init__(self, task, data: lr_tasks.TaskData, seed: int) -> None:
        self.task, self.data, self.seed = task, data, seed
        self.runs: dict[float, tuple] = {}

    # --- the task's pieces
    def model(self):
        return self.kit.make_model(self.task, self.seed)

    def optimizer(self, model, lr: float):
        return self.kit.make_optimizer(self.task, model, lr)

    def scheduler(self, optimizer, lr: float, steps: int):
        return onecycle(optimizer, MAX_LR_FACTOR * lr, steps) if self.task.schedule == "onecycle" else None

    def batches(self):
        return lr_tasks.cycle(self.kit.make_loader(self.task, self.data, self.seed))

    def loss_fn(self):
        return self.kit.make_loss(self.task)

    def evaluate(self, model) -> float:
        return self.kit.evaluate(self.task, model, self.data)[0]

    # --- the trials
    def start_loss(self) -> float:
        return self.evaluate(self.model())

    def train(self, lr: float, rung) -> float:
        if rung.continued and lr in self.runs:
            model, optimizer, scheduler, batches = self.runs[lr]
            steps = rung.trained
        else:
            model = self.model()
            optimizer = self.optimizer(model, lr)
            scheduler = self.scheduler(optimizer, lr, rung.steps)
            batches = self.batches()
            steps = rung.steps
        loss_fn = self.loss_fn()
        model.train()
        for _ in range(steps):
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            if not torch.isfinite(loss):
                self.runs.pop(lr, None)
                return math.inf
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        self.runs[lr] = (model, optimizer, scheduler, batches)
        return self.evaluate(model)


def confirm(
    task: HorizonTask, trial_data: lr_tasks.TaskData, seed: int, result, suggestion: float, args, runner=None
) -> dict:
    """Successive halving over the plan's candidates (the finder's LR among them, carried to the last rung), each
    trial from the seed's start or continued (constant LR), scored on validation; the verdict at ``args.margin``.
    ``runner`` is the trials' class (``TrialRuns`` or one like it: ``runner(task, trial_data, seed)``)."""
    try:
        plan = plan_confirmation(
            suggestion, task.steps, budget=args.budget, count=args.candidates, reduction=args.reduction,
            band=finder_band(result), wall=finder_wall(result), continued=task.schedule == "constant",
            min_steps=args.min_steps,
        )  # fmt: skip
    except TrialsTooShort as exc:
        return {"refused": str(exc), "confirmed": suggestion, "decided": False, "cost_steps": 0, "cost_percent": 0.0}
    runs = (runner or TrialRuns)(task, trial_data, seed)
    start = runs.start_loss()
    losses: dict[float, float] = dict.fromkeys(plan.candidates, 0.0)  # rung 0: every candidate goes on
    trials = []
    for index, rung in enumerate(plan.rungs):
        alive, losses = survivors(losses, rung.trials, plan.incumbent), {}
        for lr in alive:
            losses[lr] = runs.train(lr, rung)
            trials.append({"rung": index, "lr": lr, "steps": rung.steps, "trained": rung.trained,
                           "val_loss": _finite(losses[lr])})  # fmt: skip
    verdict = decide(losses, suggestion, margin=args.margin, start_loss=start)
    others = {lr: v for lr, v in losses.items() if lr != suggestion}
    challenger = min(others, key=lambda lr: (others[lr], lr)) if others else None
    return {
        "plan": plan.to_dict(),
        "band": finder_band(result),
        "wall": finder_wall(result),
        "start_loss": start,
        "last_rung": {str(lr): _finite(v) for lr, v in losses.items()},
        "challenger": challenger,
        "trials": trials,
        "verdict": verdict.to_dict(),
        "confirmed": verdict.learning_rate,
        "decided": verdict.decided,
        "cost_steps": plan.cost,
        "cost_percent": 100 * plan.cost / task.steps,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def run_task(task: HorizonTask, oracle: Lattice, seeds: list[int], args) -> dict:
    started = time.perf_counter()
    data = make_data(task)
    trial_data = validation_split(task, data)
    base = oracle.untrained(task, data)
    oracle.build(task, data)  # cached: trains nothing when lr_horizon built it already
    best = oracle.best(task)
    instead = {m: gaps(*oracle.instead(task, data, m), best, base) for m in INSTEAD}
    runs = []
    for seed in seeds:
        result, suggestion, finder_seconds = run_finder(task, data, seed)
        seed_started = time.perf_counter()
        confirmation = None if suggestion is None else confirm(task, trial_data, seed, result, suggestion, args)
        confirmed = None if confirmation is None else confirmation["confirmed"]
        challenger = None if confirmation is None else confirmation.get("challenger")
        scores = {
            "finder": score_lr(oracle, task, data, suggestion, best, base),
            "confirmed": score_lr(oracle, task, data, confirmed, best, base),
            # the last rung's best other candidate: what any margin would switch to (for --retable)
            "challenger": score_lr(oracle, task, data, challenger, best, base) if challenger else None,
        }
        oracle.save()
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
            "%s seed %d: finder %.2e (gap %.3f) -> confirmed %s (gap %.3f), cost %s %%: %s",
            task.name, seed, suggestion or math.nan, scores["finder"]["gap"],
            "none" if confirmed is None else f"{confirmed:.2e}", scores["confirmed"]["gap"],
            "-" if confirmation is None else f"{confirmation['cost_percent']:.1f}",
            "-" if confirmation is None else confirmation.get("refused") or confirmation["verdict"]["reason"],
        )  # fmt: skip
    return {
        "task": task.name,
        "group": task.group,
        "split": task.split,
        "steps": task.steps,
        "schedule": task.schedule,
        "best": best,
        "untrained": list(base),
        "instead": instead,
        "runs": runs,
        "seconds": time.perf_counter() - started,
    }


# --- tables ----------------------------------------------------------------------------------------------------


def _gap_cell(scores: list[dict]) -> str:
    values = [s["gap"] for s in scores]
    return f"{statistics.median(values):.3f} / {max(values):.3f}"


def _spread(scores: list[dict]) -> str:
    lrs = [s["lr"] for s in scores if s.get("lr")]
    if len(lrs) != len(scores) or not lrs:
        return "–"
    return f"{math.log10(max(lrs)) - math.log10(min(lrs)):.2f}"


def _worse(run: dict) -> float:
    """How much worse the confirmed LR's gap is than the finder's alone (negative: better)."""
    return run["scores"]["confirmed"]["gap"] - run["scores"]["finder"]["gap"]


def _decided(runs: list[dict]) -> str:
    confirmations = [r["confirmation"] for r in runs if r["confirmation"]]
    refused = sum("refused" in c for c in confirmations)
    decided = sum(bool(c.get("decided")) for c in confirmations)
    return f"{decided} / {refused}"


def table(results: list[dict]) -> str:
    """One row per task: gap median / worst, confirmed minus finder (median / worst), decided / refused, spread,
    cost; pooled rows per split."""
    head = ["finder alone", "confirmed", "confirmed - finder", "decided / refused", "finder spread",
            "confirmed spread", "cost % (median / max)"]  # fmt: skip
    head += [LABELS[m] for m in INSTEAD]
    lines = ["| task (group, best lr) | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for split in ("design", "holdout"):
        members = [t for t in results if t["split"] == split]
        for t in members:
            finder = [r["scores"]["finder"] for r in t["runs"]]
            confirmed = [r["scores"]["confirmed"] for r in t["runs"]]
            costs = [r["confirmation"]["cost_percent"] for r in t["runs"] if r["confirmation"]]
            worse = [_worse(r) for r in t["runs"]]
            cells = [_gap_cell(finder), _gap_cell(confirmed), f"{statistics.median(worse):+.3f} / {max(worse):+.3f}"]
            cells += [_decided(t["runs"]), _spread(finder), _spread(confirmed)]
            cells.append(f"{statistics.median(costs):.1f} / {max(costs):.1f}" if costs else "–")
            cells += [f"{t['instead'][m]['gap']:.3f}" for m in INSTEAD]
            lines.append(f"| {t['task']} ({t['group']}, {t['best']['lr']:.1e}) | " + " | ".join(cells) + " |")
        if members:
            every = [r for t in members for r in t["runs"]]
            costs = [r["confirmation"]["cost_percent"] for r in every if r["confirmation"]]
            worse = [_worse(r) for r in every]
            cells = [_gap_cell([r["scores"][k] for r in every]) for k in ("finder", "confirmed")]
            cells += [f"{statistics.median(worse):+.3f} / {max(worse):+.3f}", _decided(every)]
            for key in ("finder", "confirmed"):
                spreads = [_spread([r["scores"][key] for r in t["runs"]]) for t in members]
                numbers = [float(s) for s in spreads if s != "–"]
                cells.append(f"{statistics.median(numbers):.2f} / {max(numbers):.2f}" if numbers else "–")
            cells.append(f"{statistics.median(costs):.1f} / {max(costs):.1f}" if costs else "–")
            cells += [_gap_cell([t["instead"][m] for t in members]) for m in INSTEAD]
            lines.append(f"| **{split}: median / worst** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed(results: list[dict]) -> str:
    """One row per task x seed: finder LR and gap, confirmed LR and gap, the difference, the verdict."""
    lines = [
        "| task | seed | finder lr (gap) | confirmed lr (gap) | confirmed - finder | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for t in results:
        for r in t["runs"]:
            f, c, conf = r["scores"]["finder"], r["scores"]["confirmed"], r["confirmation"] or {}
            verdict = conf.get("refused") or conf.get("verdict", {}).get("reason", "–")
            cells = [t["task"], str(r["seed"]), _lr_gap(f), _lr_gap(c), f"{_worse(r):+.3f}", verdict.split(";")[0]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _lr_gap(score: dict) -> str:
    return "–" if score["lr"] is None else f"{score['lr']:.2e} ({score['gap']:.3f})"


def rejudge(results: list[dict], margin: float) -> list[dict]:
    """The results as they would read with the verdict at ``margin``: from each run's stored last rung, start loss
    and the scores of the finder's LR and of the last rung's best other candidate -- no training."""
    out = []
    for t in results:
        runs = []
        for r in t["runs"]:
            conf = r["confirmation"]
            if not conf or "refused" in conf:
                runs.append(r)
                continue
            losses = {float(k): (math.inf if v is None else v) for k, v in conf["last_rung"].items()}
            incumbent = conf["plan"]["incumbent"]
            verdict = decide(losses, incumbent, margin=margin, start_loss=conf["start_loss"])
            key = "finder" if verdict.learning_rate == incumbent else "challenger"
            conf = {
                **conf,
                "verdict": verdict.to_dict(),
                "confirmed": verdict.learning_rate,
                "decided": verdict.decided,
            }
            runs.append({**r, "confirmation": conf, "scores": {**r["scores"], "confirmed": r["scores"][key]}})
        out.append({**t, "runs": runs})
    return out


def sweep(results: list[dict], margins: list[float]) -> str:
    """Per margin and split: confirmed gap median / worst, confirmed - finder median / worst, decided / runs."""
    head = "| margin | split | confirmed gap (median / worst) | confirmed - finder (median / worst) | decided / runs |"
    lines = [head, "|---|---|---|---|---|"]
    for margin in margins:
        judged = rejudge(results, margin)
        for split in ("design", "holdout"):
            runs = [r for t in judged if t["split"] == split for r in t["runs"]]
            if not runs:
                continue
            gaps_ = [r["scores"]["confirmed"]["gap"] for r in runs]
            worse = [_worse(r) for r in runs]
            decided = sum(bool((r["confirmation"] or {}).get("decided")) for r in runs)
            lines.append(
                f"| {margin:g} | {split} | {statistics.median(gaps_):.3f} / {max(gaps_):.3f} | "
                f"{statistics.median(worse):+.3f} / {max(worse):+.3f} | {decided} / {len(runs)} |"
            )
    return "\n".join(lines)


def add_confirmation_arguments(parser: argparse.ArgumentParser, *, budget: float, candidates: int) -> None:
    """The confirmation's settings as options (``--budget``, ``--candidates``, ``--reduction``, ``--margin``,
    ``--min-steps``); ``budget`` and ``candidates`` are the benchmark's defaults."""
    parser.add_argument("--budget", type=float, default=budget, help="share of the task's steps")
    parser.add_argument("--candidates", type=int, default=candidates)
    parser.add_argument("--reduction", type=int, default=3, help="successive-halving reduction factor")
    parser.add_argument("--margin", type=float, default=DEFAULT_CONFIRM_MARGIN, help="the verdict's relative margin")
    parser.add_argument("--min-steps", type=int, default=MIN_TRIAL_STEPS, help="shortest first-rung trial")


def confirmation_settings(args: argparse.Namespace) -> dict:
    """The options of :func:`add_confirmation_arguments` as a run's record keeps them."""
    return {"budget": args.budget, "candidates": args.candidates, "reduction": args.reduction, "margin": args.margin,
            "min_steps": args.min_steps}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", default="long,onecycle", help=f"comma-separated subset of {list(GROUPS)}")
    parser.add_argument("--tasks", help=f"comma-separated task names (overrides --group): {sorted(TASKS_BY_NAME)}")
    parser.add_argument("--holdout", action="store_true", help="the hold-out tasks instead of the design ones")
    parser.add_argument("--seeds", type=int, default=5, help="finder seeds per task (default 5)")
    add_confirmation_arguments(parser, budget=DEFAULT_CONFIRM_BUDGET, candidates=DEFAULT_CONFIRM_CANDIDATES)
    parser.add_argument("--out", type=Path, help="JSON output path")
    parser.add_argument("--retable", type=Path, nargs="+", help="print the tables of these results at --margin")
    parser.add_argument("--sweep", help="with --retable: comma-separated margins, one summary row per split each")
    args = parser.parse_args(argv)
    if args.retable:
        results = [t for path in args.retable for t in json.loads(path.read_text())["tasks"]]
        if args.sweep:
            print(sweep(results, [float(m) for m in args.sweep.split(",")]))
            return
        print(table(rejudge(results, args.margin)))
        print()
        print(per_seed(rejudge(results, args.margin)))
        return
    if args.tasks:
        if unknown := set(args.tasks.split(",")) - set(TASKS_BY_NAME):
            parser.error(f"unknown task(s) {sorted(unknown)}")
        tasks = [TASKS_BY_NAME[n] for n in args.tasks.split(",")]
    else:
        split = "holdout" if args.holdout else "design"
        tasks = [t for t in TASKS if t.group in args.group.split(",") and t.split == split]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    quiet_loggers()
    torch.set_num_threads(1)
    oracle, seeds = Lattice(), list(range(100, 100 + args.seeds))
    out = args.out or RESULTS / ("lr_confirm_holdout.json" if args.holdout else "lr_confirm.json")
    command = "python -m benchmarks.lr_confirm " + " ".join(sys.argv[1:] if argv is None else argv)
    started, results = time.perf_counter(), []
    for task in tasks:
        log.info("%s (%s, %s)", task.name, task.group, task.split)
        results.append(run_task(task, oracle, seeds, args))
        record = {
            "command": command,
            "seconds": time.perf_counter() - started,
            "settings": confirmation_settings(args),
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
