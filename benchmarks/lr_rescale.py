"""Does the LR rescaling rule carry a found LR to another batch size (issue 13.2)?

For each task (SGD-family and Adam-family, constant LR, a fixed number of epochs: ``BASE_STEPS`` steps at
``BASE_BATCH``, so 4x the batch trains 1/4 of the steps), the LR is found with our finder at ``BASE_BATCH`` (one
finder run per seed) and carried to 4x and 1/4x the batch three ways:

* **unchanged**: the LR found at the base batch;
* **rescaled**: ``traenslenzor.tuner.rescale_lr`` with ``rule_for_optimizer`` (linear for SGD, sqrt for Adam);
* **fresh**: a new finder run at the new batch (same seed);

plus **rule on the oracle**: the base batch's grid-best LR rescaled by the rule (the rule alone, without the
finder's error). Each is scored by the normalised gap against a grid oracle trained at the new batch (see
``lr_horizon``: lattice of 0.25-0.5 decade, mean over 2 training seeds, cached in
``benchmarks/results/lr_rescale_oracle_cache.json``). "Δdec best" is how far the grid-best LR moved with the batch,
against the rule's prediction.

Run: ``python -m benchmarks.lr_rescale --seeds 5`` (``--tasks a,b``, ``--refresh-oracles``). Prints a markdown
table; writes ``benchmarks/results/lr_rescale.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.common import RESULTS
from benchmarks.horizon_tasks import HorizonTask, make_data, make_model, make_optimizer
from benchmarks.lr_horizon import Lattice, run_ours, score_lr
from traenslenzor.tuner.lr.rescale import rescale_lr, rule_for_optimizer

log = logging.getLogger("lr_rescale")
CACHE_PATH = RESULTS / "lr_rescale_oracle_cache.json"
BASE_BATCH = 32
BASE_STEPS = 500  # one epoch of the 16384 training samples at batch 32
FACTORS = (4, 0.25)

_SGD, _ADAM = (-12, 0), (-18, -6)
_N = 16384
TASKS: tuple[HorizonTask, ...] = (
    HorizonTask("rs_mlp_sgdm", "rescale", "design", "mlp", "blobs", "ce", "sgd_momentum", BASE_STEPS,
                n_train=_N, finder_range=(1e-8, 10.0), lattice=_SGD),
    HorizonTask("rs_cnn_bn_sgdm", "rescale", "design", "cnn_bn", "images", "ce", "sgd_momentum", BASE_STEPS,
                n_train=_N, finder_range=(1e-8, 10.0), lattice=_SGD),
    HorizonTask("rs_mlp_adam", "rescale", "design", "mlp", "blobs", "ce", "adam", BASE_STEPS, n_train=_N,
                lattice=_ADAM),
    HorizonTask("rs_cnn_bn_adamw", "rescale", "design", "cnn_bn", "images", "ce", "adamw", BASE_STEPS,
                n_train=_N, lattice=_ADAM),
)  # fmt: skip
TASKS_BY_NAME = {t.name: t for t in TASKS}


def at_batch(task: HorizonTask, batch: int) -> HorizonTask:
    """The task at another batch size, on the same number of epochs (samples seen)."""
    return replace(task, name=f"{task.name}@b{batch}", batch_size=batch, steps=BASE_STEPS * BASE_BATCH // batch)


def rule_of(task: HorizonTask) -> str:
    return rule_for_optimizer(type(make_optimizer(task, make_model(task, 0), 1e-3)).__name__)


def run_task(task: HorizonTask, oracle: Lattice, seeds: list[int]) -> dict:
    data = make_data(task)
    base = at_batch(task, BASE_BATCH)
    rule = rule_of(task)
    oracle.build(base, data)
    base_best = oracle.best(base)
    found = {seed: run_ours(base, data, seed)["suggestions"]["ours"] for seed in seeds}
    log.info("%s: base best %.2e, found %s", task.name, base_best["lr"], [f"{v:.2e}" for v in found.values() if v])
    rows = []
    for factor in FACTORS:
        batch = int(BASE_BATCH * factor)
        new = at_batch(task, batch)
        untrained = oracle.untrained(new, data)
        oracle.build(new, data)
        best = oracle.best(new)
        scores: dict[str, list[dict]] = {"unchanged": [], "rescaled": [], "fresh": []}
        for seed in seeds:
            lr = found[seed]
            carried = None if lr is None else rescale_lr(lr, from_batch=BASE_BATCH, to_batch=batch, rule=rule)
            fresh = run_ours(new, data, seed)["suggestions"]["ours"]
            for name, value in (("unchanged", lr), ("rescaled", carried), ("fresh", fresh)):
                scores[name].append(score_lr(oracle, new, data, value, best, untrained))
        ideal = rescale_lr(base_best["lr"], from_batch=BASE_BATCH, to_batch=batch, rule=rule)
        on_oracle = score_lr(oracle, new, data, ideal, best, untrained)
        oracle.save()
        rows.append(
            {
                "batch": batch,
                "steps": new.steps,
                "best": best,
                "moved_decades": math.log10(best["lr"] / base_best["lr"]),
                "rule_decades": math.log10(ideal / base_best["lr"]),
                "scores": scores,
                "rule_on_oracle": on_oracle,
            }
        )
        log.info("%s @ b%d: best %.2e, %s", task.name, batch, best["lr"],
                 {k: round(statistics.median(s["gap"] for s in v), 3) for k, v in scores.items()})  # fmt: skip
    return {"task": task.name, "optimizer": task.optimizer, "rule": rule, "base_best": base_best, "rows": rows}


def _cell(scores: list[dict]) -> str:
    gaps = [s["gap"] for s in scores]
    dec = [s["decades"] for s in scores if s["decades"] is not None]
    return f"{statistics.median(gaps):.3f} / {max(gaps):.3f}" + (f" ({statistics.median(dec):+.2f})" if dec else "")


def table(results: list[dict]) -> str:
    lines = [
        f"| task (rule) | batch {BASE_BATCH} → | steps | best lr there (Δdec best / rule) | unchanged | rescaled "
        "| fresh finder | rule on oracle's best |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in results:
        for row in t["rows"]:
            s = row["scores"]
            lines.append(
                f"| {t['task']} ({t['rule']}) | {row['batch']} | {row['steps']} | {row['best']['lr']:.1e} "
                f"({row['moved_decades']:+.2f} / {row['rule_decades']:+.2f}) | {_cell(s['unchanged'])} | "
                f"{_cell(s['rescaled'])} | {_cell(s['fresh'])} | {row['rule_on_oracle']['gap']:.3f} |"
            )
    every = {k: [x for t in results for row in t["rows"] for x in row["scores"][k]] for k in ("unchanged", "rescaled")}
    every["fresh"] = [x for t in results for row in t["rows"] for x in row["scores"]["fresh"]]
    oracle_gaps = [row["rule_on_oracle"]["gap"] for t in results for row in t["rows"]]
    lines.append(
        f"| **all: median / worst** | | | | {_cell(every['unchanged'])} | {_cell(every['rescaled'])} | "
        f"{_cell(every['fresh'])} | {statistics.median(oracle_gaps):.3f} / {max(oracle_gaps):.3f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", help=f"comma-separated subset of {sorted(TASKS_BY_NAME)}")
    parser.add_argument("--seeds", type=int, default=5, help="finder seeds per task (default 5)")
    parser.add_argument("--refresh-oracles", action="store_true", help="recompute the selected tasks' cached oracles")
    parser.add_argument("--out", type=Path, help="JSON output path")
    args = parser.parse_args(argv)
    tasks = list(TASKS)
    if args.tasks:
        if unknown := set(args.tasks.split(",")) - set(TASKS_BY_NAME):
            parser.error(f"unknown task(s) {sorted(unknown)}; known: {sorted(TASKS_BY_NAME)}")
        tasks = [TASKS_BY_NAME[n] for n in args.tasks.split(",")]
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("lightning", "traenslenzor"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    torch.set_num_threads(1)
    oracle = Lattice(CACHE_PATH)
    if args.refresh_oracles:
        for task in tasks:
            for batch in (BASE_BATCH, *(int(BASE_BATCH * f) for f in FACTORS)):
                oracle.refresh(at_batch(task, batch))
    seeds = list(range(100, 100 + args.seeds))
    started = time.perf_counter()
    results = []
    for i, task in enumerate(tasks, 1):
        log.info("[%d/%d] %s", i, len(tasks), task.name)
        results.append(run_task(task, oracle, seeds))
    text = table(results)
    seconds = time.perf_counter() - started
    command = "python -m benchmarks.lr_rescale " + " ".join(sys.argv[1:] if argv is None else argv)
    print("\n" + text + f"\n\n`{command}`: {seconds:.0f} s wall")
    out = args.out or RESULTS / "lr_rescale.json"
    out.write_text(json.dumps({"command": command, "seconds": seconds, "table": text, "tasks": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
