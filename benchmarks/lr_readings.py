"""Readings of recorded LR range-test curves, scored against the grid oracles without re-running anything.

``benchmarks.lr_curves`` stores each task x finder seed's curve (raw and smoothed training loss, each probe batch's
loss after every step). Here any reading -- a function of one stored run to an LR -- is scored on all of them at
once: the normalised gap to the task's grid oracle at the task's own budget and schedule (0 = the grid's best,
1 = useless), the spread over finder seeds (max - min of log10 LR, decades), per group. A probe measured with fewer
batches, or only every k-th step, is simulated from the same runs (``lr_reading_rules.probe_view``).

Run: ``python -m benchmarks.lr_readings [--groups ...] [--all] [--tasks] [--flat]``: the readings docs/suggestion.md
reports (``lr_reading_rules.REPORT``: ``stable``, the previous ``wall`` default, ``blend``), or with ``--all`` every
candidate that was compared (``READINGS``); ``--flat`` keeps only the runs whose fixed-batch loss fell less than
``MIN_FALL`` (the wall decided alone: flat starts) and adds fastai's ``valley`` on the smoothed curve.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS
from benchmarks.lr_curves import OUT, all_groups
from benchmarks.lr_quality import grid_gap
from benchmarks.lr_reading_rules import READINGS, REPORT, Reading, rule, wall_reading

ORACLES = OUT / "oracles.json"


# ------------------------------------------------------------------------------------------------------------------
# the oracles, as points (log10 lr, loss) + untrained loss, read once from the benchmarks' caches


def _oracle_points(task) -> dict:
    from benchmarks import horizon_tasks as ht
    from benchmarks import lr_tasks as lt

    if isinstance(task, lt.Task):
        from benchmarks.lr_quality import grid_oracle, oracle_grid

        grid = oracle_grid(grid_oracle(), task, lt.make_data(task))
        pts = [[math.log10(lr), v] for lr, v in zip(grid["lr"], grid["loss"], strict=True)]
        return {"points": pts, "untrained": grid["untrained"]}
    if isinstance(task, ht.HorizonTask):
        from benchmarks.lr_horizon import Lattice

        lattice = Lattice()
        points = lattice.oracle.entry(task, points={}, exact={}, instead={})["points"]
        pts = []
        for k, seeds in sorted(points.items(), key=lambda kv: int(kv[0])):
            losses = [s[0] for s in seeds[: task.oracle_seeds]]
            pts.append([int(k) / 4, None if any(v is None for v in losses) else float(np.mean(losses))])
        untrained = lattice.oracle.entry(task, points={}, exact={}, instead={})["untrained"][: task.oracle_seeds]
        return {"points": pts, "untrained": float(np.mean([u[0] for u in untrained]))}
    return family_points(task)


def family_points(task, path: Path | None = None) -> dict:
    """A family task's oracle points from the family oracle's cache (``benchmarks.family_oracle``)."""
    path = path or Path(os.environ.get("FAMILY_ORACLE_CACHE", RESULTS / "family_oracle_cache.json"))
    entry = json.loads(path.read_text()).get(task.key())
    if not entry or not entry.get("untrained") or not entry.get("points"):
        raise LookupError(f"no cached oracle for {task.name} in {path}")
    pts = []
    for k, seeds in sorted(entry["points"].items(), key=lambda kv: int(kv[0])):
        losses = [s[0] for s in seeds[: task.oracle_seeds]]
        pts.append([int(k) / 4, None if any(v is None for v in losses) else float(np.mean(losses))])
    return {"points": pts, "untrained": float(np.mean([u[0] for u in entry["untrained"][: task.oracle_seeds]]))}


def oracles(names: set[str]) -> dict[str, dict]:
    """Oracle points for the named tasks, from ``ORACLES`` or built from the caches (then saved)."""
    store = json.loads(ORACLES.read_text()) if ORACLES.exists() else {}
    missing = names - set(store)
    families = {}
    if missing:
        for tasks in all_groups().values():
            for task in tasks:
                if task.name not in missing or task.name in store:
                    continue
                if type(task).__module__.endswith("family_tasks"):
                    with contextlib.suppress(LookupError):  # not computed yet: left out of the scores (and said)
                        families[task.name] = family_points(task)  # read each time: the family cache may grow
                else:
                    store[task.name] = _oracle_points(task)
        ORACLES.write_text(json.dumps(store, indent=0))
    return {**store, **families}


def gap(oracle: dict, lr: float | None) -> float:
    """Normalised gap of ``lr``: ``lr_quality.grid_gap`` on the oracle's points (linear in log-LR between them, the
    edge value outside, 1 next to a diverged point or without an LR)."""
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return 1.0
    pts = sorted(oracle["points"])
    return grid_gap(
        {"lr": [10 ** p[0] for p in pts], "loss": [p[1] for p in pts], "untrained": oracle["untrained"]}, lr
    )


def best_lr(oracle: dict) -> float:
    pts = [p for p in oracle["points"] if p[1] is not None]
    return 10 ** min(pts, key=lambda p: p[1])[0]


# ------------------------------------------------------------------------------------------------------------------
# scoring


def load(groups: list[str]) -> dict[str, dict]:
    out = {}
    for group in groups:
        path = Path(OUT / f"{group}.json")
        if path.exists():
            out[group] = json.loads(path.read_text())
    return out


def score(curves: dict[str, dict], readings: dict[str, Reading]) -> dict:
    """Per group, reading and task: the answers over seeds, their gaps, their spread."""
    names = {task for rows in curves.values() for task in rows}
    oracle = oracles(names)
    out: dict = {}
    for group, rows in curves.items():
        for task in [t for t in rows if t not in oracle]:
            print(f"(no oracle yet for {task}: left out)")
            del rows[task]
        for task, row in rows.items():
            for name, read in readings.items():
                lrs = [read(run, row) for run in row["runs"]]
                gaps = [gap(oracle[task], lr) for lr in lrs]
                logs = [math.log10(lr) if lr and lr > 0 else math.nan for lr in lrs]
                spread = max(logs) - min(logs) if all(map(math.isfinite, logs)) else math.inf
                signed = statistics.median(
                    [v - math.log10(best_lr(oracle[task])) if math.isfinite(v) else math.nan for v in logs]
                )
                out.setdefault(group, {}).setdefault(name, {})[task] = {
                    "lrs": lrs, "gaps": gaps, "spread": spread, "signed": signed,
                }  # fmt: skip
    return out


def flat_only(curves: dict[str, dict]) -> dict[str, dict]:
    """The same groups with only the flat runs (the default's wall reading found no descent); tasks without one go."""
    out: dict[str, dict] = {}
    for group, rows in curves.items():
        for task, row in rows.items():
            readings = [(run, wall_reading(run, every=2)) for run in row["runs"]]
            runs = [run for run, r in readings if r is not None and r.descent_lr is None]
            if runs:
                out.setdefault(group, {})[task] = {**row, "runs": runs}
    return out


def kind(row: dict) -> str:
    """short / long / onecycle: the budget class of a task (short: at most 3x the sweep)."""
    if row.get("schedule") == "onecycle":
        return "onecycle"
    return "long" if (row.get("steps") or 0) > 3 * row["num_training"] else "short"


def table(curves: dict, scores: dict, by_kind: bool = True, against: str = "stable") -> str:
    lines = [
        "| group | kind | reading | tasks | gap median / worst | spread median / worst | signed dec (median) "
        f"| worst seed > {against}'s + 0.05 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, by_name in scores.items():
        kinds = sorted({kind(r) for r in curves[group].values()}) if by_kind else ["all"]
        for k in kinds:
            tasks = [t for t, r in curves[group].items() if not by_kind or kind(r) == k]
            for name, per_task in by_name.items():
                rows = [per_task[t] for t in tasks]
                gaps = [g for r in rows for g in r["gaps"]]
                spreads = [r["spread"] for r in rows]
                signed = [r["signed"] for r in rows if math.isfinite(r["signed"])]
                worse = [
                    t for t in tasks
                    if against in by_name and max(per_task[t]["gaps"]) > max(by_name[against][t]["gaps"]) + 0.05
                ]  # fmt: skip
                lines.append(
                    f"| {group} | {k} | {name} | {len(tasks)} | {statistics.median(gaps):.3f} / {max(gaps):.3f} | "
                    f"{statistics.median(spreads):.2f} / {max(spreads):.2f} | "
                    f"{statistics.median(signed) if signed else math.nan:+.2f} | {', '.join(worse) or '-'} |"
                )
    return "\n".join(lines)


def task_table(curves: dict, scores: dict) -> str:
    names = list(next(iter(scores.values())))
    lines = ["| group | task | kind | " + " | ".join(f"{n} worst gap / spread / signed" for n in names) + " |"]
    lines.append("|---" * (3 + len(names)) + "|")
    for group, by_name in scores.items():
        for task, row in curves[group].items():
            cells = []
            for n in names:
                cell = by_name[n][task]
                cells.append(f"{max(cell['gaps']):.3f} / {cell['spread']:.2f} / {cell['signed']:+.2f}")
            lines.append(f"| {group} | {task} | {kind(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, readings: dict[str, Reading] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", default="design,seen,new,families-design,families-holdout")
    parser.add_argument("--tasks", action="store_true", help="also the per-task table")
    parser.add_argument("--all", action="store_true", help="every candidate reading, not only the reported ones")
    parser.add_argument("--flat", action="store_true", help="only the flat runs, and fastai's valley beside")
    args = parser.parse_args(argv)
    curves = load(args.groups.split(","))
    chosen = readings or (READINGS if args.all else REPORT)
    if args.flat:
        curves, chosen = flat_only(curves), {**chosen, "fastai valley": rule("valley")}
        print("flat runs:", sum(len(row["runs"]) for rows in curves.values() for row in rows.values()))
    scores = score(curves, chosen)
    print(table(curves, scores, against=next(iter(REPORT))))
    if args.tasks:
        print()
        print(task_table(curves, scores))


if __name__ == "__main__":
    main()
