"""What an LR search costs: our two entry points beside Lightning's ``lr_find`` and torch-lr-finder, in one run.

Per task of ``benchmarks.lr_tasks`` (the tasks of ``lr_quality``) and finder seed, from the same fresh model and
batch order, interleaved so that machine load hits every tool alike:

* ``plain``: ``num_training`` plain training steps (zero_grad, forward, backward, step) -- the floor;
* ``find_lr``: ``traenslenzor.tuner.find_lr`` with its defaults (the fixed-batch probe included);
* ``find_lr (no probe)``: the same with ``probe_batches=0``;
* ``ours Tuner``: ``traenslenzor.tuner.Tuner(trainer).lr_find`` with its defaults;
* ``Lightning``: ``lightning.pytorch.tuner.Tuner(trainer).lr_find``;
* ``torch-lr-finder``: its ``range_test``.

Each tool's wall time per optimizer step it ran, over the plain step's (``x plain``), and our tools' over
Lightning's on the same task and seed (``x Lightning``); medians over tasks x seeds. One warm-up task is run first
and not counted. Run: ``python -m benchmarks.lr_cost [--tasks a,b] [--seeds 2]`` (~5 min on 2 cores); writes
``benchmarks/results/lr_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from benchmarks import lr_tasks as lt
from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.finders import Sweep, lit_module, run_lightning, run_ours, run_torch_lr_finder, run_tuner
from benchmarks.lr_quality import plain_steps

TOOLS = ("find_lr", "find_lr (no probe)", "ours Tuner", "Lightning", "torch-lr-finder")


def _run(tool: str, task: lt.Task, data: lt.TaskData, seed: int) -> tuple[float, int]:
    """(seconds, optimizer steps) of one tool on one task and seed."""
    sweep = Sweep(*task.finder_range, task.num_training)
    loss = lt.make_loss(task)
    loader = lt.make_loader(task, data, seed)
    if tool in ("ours Tuner", "Lightning"):
        module = lit_module(
            lambda: lt.make_model(task, seed), loss,
            lambda m, lr: lt.make_optimizer(task, m.parameters(), lr), task.finder_range[0],
        )  # fmt: skip
        if tool == "Lightning":
            out = run_lightning(module, loader, sweep)
        else:
            from traenslenzor.tuner import Tuner

            out = run_tuner(Tuner, module, loader, sweep)
        return out["seconds"], out["steps"]
    model = lt.make_model(task, seed)
    optimizer = lt.make_optimizer(task, model.parameters(), task.finder_range[0])
    if tool == "torch-lr-finder":
        out = run_torch_lr_finder(model, optimizer, loss, loader, sweep, task.name)
        return out["seconds"], out["steps"]
    options = {"probe_batches": 0} if tool == "find_lr (no probe)" else {}
    out = run_ours(model, optimizer, loss, loader, sweep, **options)
    return out["seconds"], len(out["result"].lrs)


def measure(task: lt.Task, seed: int) -> dict:
    data = lt.make_data(task)
    plain = plain_steps(task, data, seed) / task.num_training
    row = {"task": task.name, "seed": seed, "plain_step_s": plain}
    for tool in TOOLS:
        seconds, steps = _run(tool, task, data, seed)
        row[tool] = {"seconds": seconds, "steps": steps, "x_plain": seconds / (plain * steps)}
    return row


def table(rows: list[dict]) -> str:
    lines = ["| tool | x plain (median / max) | x Lightning (median / max) |", "|---|---|---|"]
    for tool in TOOLS:
        plain = [r[tool]["x_plain"] for r in rows]
        lit = [r[tool]["x_plain"] / r["Lightning"]["x_plain"] for r in rows]
        lines.append(
            f"| {tool} | {statistics.median(plain):.2f} / {max(plain):.2f} | "
            f"{statistics.median(lit):.2f} / {max(lit):.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="", help="comma-separated subset of lr_tasks (default: all)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "lr_cost.json"))
    args = parser.parse_args(argv)
    quiet_loggers()
    torch.set_num_threads(1)  # timing on a shared machine: one thread is the steadiest
    tasks = [lt.TASKS_BY_NAME[n] for n in args.tasks.split(",")] if args.tasks else list(lt.TASKS)
    measure(tasks[0], 0)  # warm-up: imports, first-call allocations
    start = time.perf_counter()
    rows = []
    for task in tasks:
        for seed in range(100, 100 + args.seeds):
            rows.append(measure(task, seed))
        print(f"  {task.name}: " + ", ".join(f"{t} {rows[-1][t]['x_plain']:.2f}x" for t in TOOLS), flush=True)
    text = table(rows)
    print(text)
    given = sys.argv[1:] if argv is None else argv
    payload = {"command": " ".join(["python -m benchmarks.lr_cost", *given]), "seconds": time.perf_counter() - start,
               "rows": rows, "table": text}  # fmt: skip
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=1)


if __name__ == "__main__":
    main()
