"""The LR finders on fine-tuning (issue 29): pretrained starts, frozen and whole-model phases, per-group LRs.

Two measurements on the tasks of ``benchmarks.finetune_tasks`` (pretrained by the benchmark itself, no downloads):

1. **Per task, per finder seed** (5 seeds, 100-104: the new head's init and the batch order), the gap to the task's
   grid oracle at its own budget (0 = the grid's best, 1 = useless; the cached lattice interpolated in log-LR, the
   edge value outside it) of: ours (``find_lr`` as a user calls it: the default ``blend``, and each of its parts
   ``wall`` and ``stable``), fastai's ``valley`` read on our curve, Lightning's ``Tuner.lr_find`` and
   torch-lr-finder (each from the same start and batches), and what a user types without tuning: 1e-4, 3e-4
   (AdamW's common fine-tuning LRs) and 2e-3 (fastai ``fine_tune``'s default). Every LR is the head's: the
   backbone's groups keep their ratio to it. Ours sweeps the groups with their ratios kept; Lightning and
   torch-lr-finder set every group to the same LR during their sweep (their suggestion is then used as the head's
   LR, as a user with a ``backbone_lr_scale`` would). Per run the curve's shape is kept: how far the fixed-batch
   loss fell before it rose (a start that is already low, stays flat and blows up is the whole-model phase's
   typical curve: fastai's book warns that its steepest point misleads there).
2. **The two-phase workflow per family** (the app's ``freeze_epochs``): the head alone with the backbone frozen on
   its own OneCycle, then the whole model (backbone groups fresh, at ``backbone_lr_scale`` or timm's layer decay) on a
   second OneCycle. **Tuned**: ``find_lr`` before each phase (the head's from the pretrained start, the whole model's
   from the head-trained weights), OneCycle peaking at 3 x the suggestion, as the app does. **Untuned recipes**:
   ``learning_rate`` = 1e-4 or 3e-4 in both phases (the app's OneCycle peaks at 3 x), and fastai's ``fine_tune``
   (head phase peaking at 2e-3, then the whole model at 1e-3 for the head and 1e-5 for the backbone). Held-out loss
   and accuracy after both phases, 5 seeds tuned, 3 per recipe.

Design families ``cnn``, ``vit``, ``mlp``; hold-out families ``gru`` and ``convnext`` (committed before anything was
measured on them) are reported apart.

Run: ``python -m benchmarks.lr_finetune [--split design|holdout] [--tasks a,b] [--seeds 5] [--no-workflow]``;
the oracles first (``python -m benchmarks.finetune_tasks --oracle``, or computed here when missing). Prints
markdown; writes ``benchmarks/results/lr_finetune[_<split>].json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks import finetune_tasks as ft
from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.finders import Sweep, lit_module, run_lightning, run_ours, run_torch_lr_finder
from benchmarks.lr_reading import _horizon_gap
from traenslenzor.tuner import find_lr

log = logging.getLogger("lr_finetune")
SEED0 = 100
OURS = ("blend", "wall", "stable")
FIXED = {"1e-4": 1e-4, "3e-4": 3e-4, "2e-3": 2e-3}
COLUMNS = ("blend", "wall", "stable", "valley", "lightning", "torch_lr_finder", *FIXED)
LABELS = {"blend": "ours (blend, default)", "valley": "fastai valley", "lightning": "Lightning",
          "torch_lr_finder": "torch-lr-finder"}  # fmt: skip


def sweep_of(task: ft.FinetuneTask) -> Sweep:
    return Sweep(*task.finder_range, task.num_training)


def probe_fall(result) -> float | None:
    """How far the fixed-batch loss fell from its first measured value to its lowest, as a fraction of the first
    (None without a probe curve): ~0 on a start that is already low and stays flat until it blows up."""
    probe = np.asarray(result.results.get("probe_loss", []), dtype=float)
    probe = probe[np.isfinite(probe)]
    if len(probe) < 3 or probe[0] <= 0:
        return None
    return float((probe[0] - probe.min()) / probe[0])


def run_finders(task: ft.FinetuneTask, data, seed: int) -> dict:
    """Every finder's suggestion on the task from the same start and batch order."""
    loss = ft.make_loss(task)
    model = ft.make_model(task, seed)
    ours = run_ours(model, ft.make_optimizer(task, model, task.finder_range[0]), loss, ft.make_loader(task, data, seed),
                    sweep_of(task))  # fmt: skip
    result = ours["result"]
    suggestions = {name: result.suggestion(method=name) for name in OURS}
    suggestions["valley"] = result.suggestion(method="valley")
    module = lit_module(lambda: ft.make_model(task, seed), loss, lambda lit, lr: ft.make_optimizer(task, lit.model, lr),
                        task.finder_range[0])  # fmt: skip
    suggestions["lightning"] = run_lightning(module, ft.make_loader(task, data, seed), sweep_of(task))["suggestion"]
    model = ft.make_model(task, seed)
    suggestions["torch_lr_finder"] = run_torch_lr_finder(
        model, ft.make_optimizer(task, model, task.finder_range[0]), loss, ft.make_loader(task, data, seed),
        sweep_of(task), task.name,
    )["suggestion"]  # fmt: skip
    suggestions |= FIXED
    return {
        "seed": seed,
        "suggestions": suggestions,
        "seconds": ours["seconds"],
        "probe_fall": probe_fall(result),
        "findings": [finding.code for finding in result.diagnostics()],
    }


def run_task(task: ft.FinetuneTask, lattice: ft.FinetuneLattice, seeds: list[int]) -> dict:
    started = time.perf_counter()
    data = ft.make_data(task)
    ft.compute_oracle(lattice, [task])  # what is missing, if anything
    best = lattice.best(task)
    runs = []
    for seed in seeds:
        run = run_finders(task, data, seed)
        run["gaps"] = {name: _horizon_gap(lattice, task, lr) for name, lr in run["suggestions"].items()}
        runs.append(run)
        log.info("%s seed %d: %s", task.name, seed,
                 {k: f"{v or math.nan:.1e} ({run['gaps'][k]:.2f})" for k, v in run["suggestions"].items()})  # fmt: skip
    return {"task": task.name, "family": task.family, "split": task.split, "phase": task.phase,
            "schedule": task.schedule, "best_lr": best["lr"], "runs": runs,
            "seconds": time.perf_counter() - started}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# the two-phase workflow


@dataclass(frozen=True)
class Workflow:
    """A family's freeze-then-unfreeze fine-tuning: steps per phase and the whole model's group ratios."""

    family: str
    split: str
    head_steps: int
    whole_steps: int
    backbone_lr_scale: float = 0.1
    layer_decay: float | None = None
    shots: int | None = None
    batch_size: int = 32

    def phase(self, phase: str) -> ft.FinetuneTask:
        steps = self.head_steps if phase == "head" else self.whole_steps
        return ft.FinetuneTask(f"workflow_{self.family}_{phase}", self.family, self.split, phase, "adamw", steps,
                               "onecycle", shots=self.shots, batch_size=self.batch_size,
                               backbone_lr_scale=self.backbone_lr_scale, layer_decay=self.layer_decay)  # fmt: skip


WORKFLOWS = (
    Workflow("cnn", "design", 150, 450),
    Workflow("vit", "design", 150, 400, layer_decay=0.75),
    Workflow("mlp", "design", 100, 400),
    Workflow("gru", "holdout", 100, 400),
    Workflow("convnext", "holdout", 100, 400),
)
# Run only when named (--families tcn): the tcn family was committed for lr_finetune_probe's question (67162f3) and
# its workflow measured after this module's tables; nothing here was chosen on it.
NAMED_ONLY_WORKFLOWS = (Workflow("tcn", "holdout", 100, 400),)
# A recipe: (head phase's base LR, whole phase's base LR, the backbone's scale in the whole phase or None for the
# workflow's own); the app's OneCycle peaks at 3 x the base LR, so fastai's peaks (2e-3, then 1e-3 / 1e-5) are /3.
RECIPES = {
    "AdamW 1e-4": (1e-4, 1e-4, None),
    "AdamW 3e-4": (3e-4, 3e-4, None),
    "fastai fine_tune 2e-3": (2e-3 / 3, 1e-3 / 3, 0.01),
}


def _found(task: ft.FinetuneTask, model, data, seed: int) -> float:
    optimizer = ft.make_optimizer(task, model, task.finder_range[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = find_lr(model, optimizer, ft.make_loss(task), ft.make_loader(task, data, seed),
                         min_lr=task.finder_range[0], max_lr=task.finder_range[1], num_training=task.num_training,
                         progress_bar=False)  # fmt: skip
    return float(result.suggestion())


def run_workflow(flow: Workflow, seed: int, recipe: str | None) -> dict:
    """Both phases from the pretrained start (new head from ``seed``); tuned when ``recipe`` is None."""
    head, whole = flow.phase("head"), flow.phase("whole")
    data = ft.target_data(flow.family, flow.shots)
    model = ft.pretrained_model(flow.family, seed)
    ft.set_frozen(model, True)
    head_lr, whole_lr, scale = (None, None, None) if recipe is None else RECIPES[recipe]
    head_lr = head_lr or _found(head, model, data, seed)
    optimizer = ft.make_optimizer(head, model, head_lr)
    ok = ft._fit(model, optimizer, ft.scheduler_for(head, optimizer, head_lr, head.steps), data.x_train, data.y_train,
                 head.steps, head.batch_size, seed)  # fmt: skip
    ft.set_frozen(model, False)
    if ok:
        whole_lr = whole_lr or _found(whole, model, data, seed)
        optimizer = ft.make_optimizer(whole, model, whole_lr, scale)
        ok = ft._fit(model, optimizer, ft.scheduler_for(whole, optimizer, whole_lr, whole.steps), data.x_train,
                     data.y_train, whole.steps, whole.batch_size, seed + 1)  # fmt: skip
    loss, acc = ft.evaluate(whole, model, data) if ok else (math.inf, whole.chance)
    return {"seed": seed, "head_lr": head_lr, "whole_lr": whole_lr, "loss": loss, "acc": acc}


def workflow_rows(flow: Workflow, seeds: list[int]) -> dict:
    out = {"family": flow.family, "split": flow.split, "tuned": [], "recipes": {}}
    for seed in seeds:
        out["tuned"].append(run_workflow(flow, seed, None))
        log.info("workflow %s tuned seed %d: %s", flow.family, seed, out["tuned"][-1])
    for recipe in RECIPES:
        out["recipes"][recipe] = [run_workflow(flow, seed, recipe) for seed in seeds[:3]]
        log.info("workflow %s %s: %s", flow.family, recipe, out["recipes"][recipe])
    return out


# ---------------------------------------------------------------------------------------------------------------
# tables


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} / {max(values):.3f}"


def gap_table(results: list[dict], split: str) -> str:
    rows = [r for r in results if r["split"] == split]
    head = "| task | best LR | " + " | ".join(LABELS.get(c, c) for c in COLUMNS) + " |"
    lines = [head, "|---|---|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [_stats([run["gaps"][c] for run in r["runs"]]) for c in COLUMNS]
        lines.append(f"| {r['task']} | {r['best_lr']:.1e} | " + " | ".join(cells) + " |")
    every = {c: [run["gaps"][c] for r in rows for run in r["runs"]] for c in COLUMNS}
    lines.append("| **all (median / worst)** | | " + " | ".join(f"**{_stats(every[c])}**" for c in COLUMNS) + " |")
    return "\n".join(lines)


def shape_table(results: list[dict]) -> str:
    lines = [
        "| task | phase | probe fell (median) | decades from the best: blend / wall / stable (median) | findings |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        falls = [run["probe_fall"] for run in r["runs"] if run["probe_fall"] is not None]
        decades = []
        for m in OURS:
            lrs = [run["suggestions"][m] for run in r["runs"] if run["suggestions"][m]]
            decades.append(f"{statistics.median(math.log10(lr / r['best_lr']) for lr in lrs):+.2f}" if lrs else "-")
        findings = ", ".join(sorted({f for run in r["runs"] for f in run["findings"]})) or "-"
        fell = f"{statistics.median(falls):.0%}" if falls else "-"
        lines.append(f"| {r['task']} | {r['phase']} | {fell} | {' / '.join(decades)} | {findings} |")
    return "\n".join(lines)


def workflow_table(flows: list[dict]) -> str:
    names = ["tuned (find_lr each phase)", *RECIPES]
    lines = ["| family | split | " + " | ".join(names) + " | tuned LRs head / whole (median) |",
             "|---|---|" + "---|" * len(names) + "---|"]  # fmt: skip
    for f in flows:
        cells = []
        for runs in [f["tuned"], *f["recipes"].values()]:
            loss = [r["loss"] for r in runs]
            cells.append(f"{statistics.mean(loss):.4f} ({statistics.mean(r['acc'] for r in runs):.1%})")
        lrs = [statistics.median(r[k] for r in f["tuned"]) for k in ("head_lr", "whole_lr")]
        lines.append(f"| {f['family']} | {f['split']} | " + " | ".join(cells) + f" | {lrs[0]:.1e} / {lrs[1]:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("design", "holdout"))
    parser.add_argument("--tasks", default="")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-workflow", action="store_true", help="only the per-task gaps")
    parser.add_argument("--no-tasks", action="store_true", help="only the two-phase workflow")
    parser.add_argument("--out", help="the JSON file (default: benchmarks/results/lr_finetune[_<split>].json)")
    parser.add_argument("--families", default="", help="the workflows of these families only (tcn: named only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    quiet_loggers()
    torch.set_num_threads(1)
    wanted = [n for n in args.tasks.split(",") if n]
    tasks = [t for t in ft.TASKS if (not wanted or t.name in wanted) and args.split in (None, t.split)]
    seeds = list(range(SEED0, SEED0 + args.seeds))
    lattice = ft.FinetuneLattice()
    results = [] if args.no_tasks else [run_task(t, lattice, seeds) for t in tasks]
    flows = []
    if not args.no_workflow:
        families = [f for f in args.families.split(",") if f]
        pool = [w for w in (*WORKFLOWS, *NAMED_ONLY_WORKFLOWS) if w.family in families] if families else WORKFLOWS
        flows = [workflow_rows(w, seeds) for w in pool if args.split in (None, w.split)]
    out = args.out or RESULTS / ("lr_finetune" + (f"_{args.split}" if args.split else "") + ".json")
    Path(out).write_text(json.dumps({"tasks": results, "workflows": flows}, indent=1, default=float))
    for split in ("design", "holdout"):
        if any(r["split"] == split for r in results):
            print(f"\n### {split} tasks: gap median / worst over tasks x {args.seeds} seeds\n")
            print(gap_table(results, split))
    if results:
        print("\n### curve shapes\n")
        print(shape_table(results))
    if flows:
        print("\n### two-phase workflow: held-out loss (accuracy), mean over seeds\n")
        print(workflow_table(flows))


if __name__ == "__main__":
    main()
