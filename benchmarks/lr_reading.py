"""The fixed-batch wall reading (issue 20) against the old default, over 5 finder seeds on every group.

For every task and finder seed (model init and batch order), ``find_lr`` runs as a user calls it twice: as today
(``probe_batches=0``: the old default ``stable`` on the smoothed training loss, its batches unchanged) and with the
default probe (``wall`` on the loss of the 4 set-aside batches; the same result's ``stable`` reading is kept too).
Per task: the **spread** (max - min of log10 suggestion over the seeds, decades), the **gap** to the oracle (the
cached grid's loss interpolated in log-LR, no training: ``lr_quality.grid_gap`` for the short tasks, the cached
lattice of ``lr_horizon`` for the horizon tasks, its edge value outside it), whether the band held the other seeds'
answers, and the **cost** (optimizer steps and forward-only probe passes per ``num_training``, wall time per
plain-step time of the old finder).

Groups: ``design`` (what the reading's knobs were chosen on: ``lr_tasks`` design + confirm, ``horizon_tasks``
design long/onecycle), ``seen hold-out`` (the earlier rounds' hold-outs, looked at once the first version was
committed: not a test any more), ``new hold-out`` (``lr_reading_holdout``: committed before they were measured).

Run: ``python -m benchmarks.lr_reading [--groups design,new] [--seeds 5]`` (~10 min on 2 cores with cached
oracles). Prints markdown; writes ``benchmarks/results/lr_reading.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings

import numpy as np
import torch

from benchmarks import horizon_tasks as ht
from benchmarks import lr_tasks as lt
from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.finders import Sweep, lit_module, run_lightning, run_torch_lr_finder
from benchmarks.lr_horizon import Lattice
from benchmarks.lr_quality import grid_gap, grid_oracle, oracle_grid
from benchmarks.lr_reading_holdout import HORIZON_HOLDOUT_2, SIXTH_HOLDOUT
from traenslenzor.tuner import find_lr

SEED0 = 100
READERS = ("before", "stable", "wall")  # before: today's default (no probe); stable/wall: the probed result
ANCHORS = ("valley", "lightning", "torch_lr_finder")  # fastai's valley on today's curve, the two other finders


def _short(names: tuple[str, ...]) -> list:
    return [lt.TASKS_BY_NAME[n] for n in names]


def groups() -> dict[str, list]:
    seen = [
        n for g in ("holdout", "new holdout", "third holdout", "fourth holdout", "fifth holdout") for n in lt.GROUPS[g]
    ]
    horizon_design = [t for t in ht.DESIGN_TASKS if t.group != "app"]
    horizon_seen = [t for t in ht.HOLDOUT_TASKS if t.group != "app" and t.name != "oc_cnn_adam"]  # no cached oracle
    return {
        "design": _short(lt.DESIGN + lt.CONFIRM) + horizon_design,
        "seen": _short(tuple(seen)) + horizon_seen,
        "new": list(SIXTH_HOLDOUT) + list(HORIZON_HOLDOUT_2),
    }


def _horizon_gap(oracle: Lattice, task, lr: float | None) -> float:
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return 1.0
    points = oracle.evaluated(task)
    ks = np.array(sorted(points), dtype=float)
    losses = np.array([points[int(k)][0] for k in ks])
    base = float(np.mean([v[0] for v in oracle.entry(task)["untrained"][: task.oracle_seeds]]))
    best = float(np.min(losses))
    x = float(np.clip(4 * math.log10(lr), ks[0], ks[-1]))
    j = int(np.clip(np.searchsorted(ks, x), 1, len(ks) - 1))
    w = (x - ks[j - 1]) / (ks[j] - ks[j - 1])
    pair = losses[[j - 1, j]]
    loss = pair[0] + w * (pair[1] - pair[0]) if np.isfinite(pair).all() else math.inf
    return 1.0 if not math.isfinite(loss) else min(1.0, (loss - best) / (base - best))


def _builders(task):
    if isinstance(task, lt.Task):
        data = lt.make_data(task)
        return (
            data,
            (lambda s: lt.make_model(task, s)),
            (lambda m: lt.make_optimizer(task, m.parameters(), 1e-3)),
            (lambda s: lt.make_loader(task, data, s)),
            lt.make_loss(task),
        )
    data = ht.make_data(task)
    return (
        data,
        (lambda s: ht.make_model(task, s)),
        (lambda m: ht.make_optimizer(task, m, 1e-3)),
        (lambda s: ht.make_loader(task, data, s)),
        ht.make_loss(task),
    )


def run_task(task, seeds: int, short_oracle, horizon_oracle, anchors: bool = False) -> dict:
    data, make_model, make_optimizer, make_loader, loss = _builders(task)
    if isinstance(task, lt.Task):
        grid = oracle_grid(short_oracle, task, data)
        gap = lambda lr: grid_gap(grid, lr)  # noqa: E731
    else:
        gap = lambda lr: _horizon_gap(horizon_oracle, task, lr)  # noqa: E731
    min_lr, max_lr = task.finder_range
    runs = []
    for seed in range(SEED0, SEED0 + seeds):
        out: dict = {"seed": seed}
        for probe in (0, None):
            model = make_model(seed)
            kwargs = {"probe_batches": 0} if probe == 0 else {}
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = find_lr(
                    model, make_optimizer(model), loss, make_loader(seed), min_lr=min_lr, max_lr=max_lr,
                    num_training=task.num_training, progress_bar=False, **kwargs,
                )  # fmt: skip
            seconds = time.perf_counter() - start
            if probe == 0:
                out["before"] = result.suggestion()
                out["valley"] = result.suggestion(method="valley")
                out["before_seconds"], out["before_steps"] = seconds, len(result.lrs)
                continue
            out["stable"] = result.suggestion(method="stable")
            out["wall"] = result.suggestion()
            out["method"] = result.suggestion_outcome().method
            reading = result.reading()
            out["band"] = None if reading is None else [reading.low, reading.high]
            out["decided_by"] = None if reading is None else reading.decided_by
            out["seconds"], out["steps"] = seconds, len(result.lrs)
            out["probe_passes"] = result.metadata.get("probe_forward_passes", 0)
            out["findings"] = [f.code for f in result.diagnostics()]
        if anchors:
            sweep = Sweep(min_lr, max_lr, task.num_training)
            module = lit_module(lambda seed=seed: make_model(seed), loss, lambda m, lr: make_optimizer(m), min_lr)
            out["lightning"] = run_lightning(module, make_loader(seed), sweep)["suggestion"]
            model = make_model(seed)
            tlf = run_torch_lr_finder(model, make_optimizer(model), loss, make_loader(seed), sweep, task.name)
            out["torch_lr_finder"] = tlf["suggestion"]
        readers = READERS + (ANCHORS if anchors else ANCHORS[:1])
        for reader in readers:
            out[f"{reader}_gap"] = gap(out[reader])
        runs.append(out)
    row = {"task": task.name, "num_training": task.num_training, "runs": runs}
    for reader in readers:
        logs = [math.log10(r[reader]) if r[reader] else math.nan for r in runs]
        row[f"{reader}_spread"] = max(logs) - min(logs) if all(map(math.isfinite, logs)) else math.inf
        row[f"{reader}_gaps"] = [r[f"{reader}_gap"] for r in runs]
    held = [
        r2["wall"] is not None and r["band"] is not None and r["band"][0] <= r2["wall"] <= r["band"][1]
        for r in runs
        for r2 in runs
        if r2 is not r
    ]
    row["band_holds"] = float(np.mean(held)) if held else math.nan
    row["band_width"] = float(np.median([math.log10(r["band"][1] / r["band"][0]) for r in runs if r["band"]]))
    row["cost_steps"] = float(np.median([r["steps"] / task.num_training for r in runs]))
    row["cost_probe"] = float(np.median([r["probe_passes"] / task.num_training for r in runs]))
    row["cost_time"] = float(
        np.median([r["seconds"] / r["before_seconds"] * r["before_steps"] / r["steps"] for r in runs])
    )  # wall time per step, with the probe, over today's
    return row


def table(rows: dict[str, list[dict]]) -> str:
    lines = [
        "| group | tasks | reader | spread median / worst (dec) | gap median / worst (all seeds) "
        "| worst-seed gap: worse than before by > 0.05 |",
        "|---|---|---|---|---|---|",
    ]
    for group, tasks in rows.items():
        if not tasks:
            continue
        for reader in READERS + ANCHORS:
            if f"{reader}_spread" not in tasks[0]:
                continue
            spreads = [t[f"{reader}_spread"] for t in tasks]
            gaps = [g for t in tasks for g in t[f"{reader}_gaps"]]
            worse = [t["task"] for t in tasks if max(t[f"{reader}_gaps"]) > max(t["before_gaps"]) + 0.05]
            lines.append(
                f"| {group} | {len(tasks)} | {reader} | {statistics.median(spreads):.2f} / {max(spreads):.2f} | "
                f"{statistics.median(gaps):.3f} / {max(gaps):.3f} | {', '.join(worse) or '-'} |"
            )
    return "\n".join(lines)


def task_table(rows: dict[str, list[dict]]) -> str:
    lines = [
        "| group | task | spread before / stable / wall | worst gap before / stable / wall | band holds | cost |",
        "|---|---|---|---|---|---|",
    ]
    for group, tasks in rows.items():
        for t in tasks:
            spread = " / ".join(f"{t[f'{r}_spread']:.2f}" for r in READERS)
            worst = " / ".join(f"{max(t[f'{r}_gaps']):.3f}" for r in READERS)
            cost = f"{t['cost_steps']:.2f} steps + {t['cost_probe']:.1f} fwd, {t['cost_time']:.2f}x time"
            lines.append(f"| {group} | {t['task']} | {spread} | {worst} | {t['band_holds']:.2f} | {cost} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", default="design,seen,new")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", default="", help="only these task names (comma-separated)")
    parser.add_argument("--out", default=str(RESULTS / "lr_reading.json"))
    parser.add_argument("--anchors", action="store_true", help="also run Lightning's and torch-lr-finder's finders")
    args = parser.parse_args(argv)
    quiet_loggers()
    torch.set_num_threads(1)
    short_oracle, horizon_oracle = grid_oracle(), Lattice()
    wanted = set(filter(None, args.tasks.split(",")))
    rows: dict[str, list[dict]] = {}
    start = time.perf_counter()
    for group in args.groups.split(","):
        rows[group] = []
        for task in groups()[group]:
            if wanted and task.name not in wanted:
                continue
            rows[group].append(run_task(task, args.seeds, short_oracle, horizon_oracle, args.anchors))
            print(f"  {group} {task.name}: spread wall {rows[group][-1]['wall_spread']:.2f}", flush=True)
    short_oracle.save()
    text = table(rows) + "\n\n" + task_table(rows)
    print(text)
    given = sys.argv[1:] if argv is None else argv
    payload = {"command": " ".join(["python -m benchmarks.lr_reading", *given]), "seeds": args.seeds,
               "seconds": time.perf_counter() - start, "rows": rows, "table": text}  # fmt: skip
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=1, default=lambda v: None)


if __name__ == "__main__":
    main()
