"""Can the default's error be predicted from the curve and the task? A leave-one-family-out check (issue 26).

The research notes (`../shared/research/lr_stability.md`, 2026-12-07 review) suggest modelling the offset from a
range test's reading to the grid's best LR with features that track the task family -- how far the loss fell, the
disagreement of two readings, the optimizer, the schedule, the horizon -- validated leave-one-family-out. This
module does that on every curve ``benchmarks.lr_curves`` recorded (5 groups, 72 tasks, 18 families, 5 seeds): per
run the error ``log10(best) - log10(blend)`` in decades and the features

- ``sgd``: plain SGD, SGD with momentum or Nesterov (1) or an adaptive optimizer (0);
- ``onecycle``: the task trains with OneCycle;
- ``log T/n``: log10 of the task's training steps over the sweep's ``num_training`` (the horizon);
- ``fall``: how far the fixed-batch loss fell from its start to its floor, as a fraction of the start;
- ``log s/w``: log10 of ``stable``'s reading over ``wall``'s (the two parts of ``blend`` disagreeing);
- ``flat``: the wall decided alone (no descent to read).

Two models, each fitted by ridge regression (lambda 1, intercept free) on all families but one and applied to the
held-out family's runs: **horizon** (intercept, ``onecycle``, ``log T/n`` and their product: the notes' direction 3,
an offset per schedule that moves with the horizon) and **all** (every feature). Printed: the coefficients fitted on
everything and the variance they explain, then the gap (0 = the grid's best, 1 = useless) median / worst per group
and budget class for ``blend`` and each model's corrected LR ``blend x 10**prediction``.

Run: ``python -m benchmarks.lr_offset_model`` (seconds; reads ``benchmarks/results/lr_curves/`` and the oracles).
"""

from __future__ import annotations

import collections
import math
import statistics

import numpy as np

from benchmarks.lr_reading_rules import _points, arrays, blend, probe_view, rule, wall, wall_reading
from benchmarks.lr_readings import best_lr, gap, load, oracles
from traenslenzor.tuner.lr.wall import START_POINTS, centred_smooth

GROUPS = ("design", "seen", "new", "families-design", "families-holdout")
SGD = {"sgd", "sgd_momentum", "nesterov"}
RIDGE = 1.0
MODELS = {
    "horizon": ("1", "onecycle", "log T/n", "onecycle x log T/n"),
    "all": ("1", "sgd", "onecycle", "log T/n", "fall", "log s/w", "flat"),
}


def _fall(run: dict) -> float:
    lrs, _, _ = arrays(run)
    x, y = _points(lrs, probe_view(run, 4, 2))
    smooth = centred_smooth(np.log10(x), y)
    start = float(np.median(smooth[:START_POINTS]))
    return (start - float(smooth[START_POINTS:].min())) / abs(start) if start else 0.0


def runs() -> list[dict]:
    """One row per recorded run: the task's facts, the default's answer and its error, the features."""
    curves = load(list(GROUPS))
    oracle = oracles({t for rows in curves.values() for t in rows})
    read_blend, read_stable, read_wall = blend(rule("stable"), wall(every=2)), rule("stable"), wall(every=2)
    out = []
    for group, rows in curves.items():
        for task, row in rows.items():
            if task not in oracle:
                continue
            best = math.log10(best_lr(oracle[task]))
            for run in row["runs"]:
                answer, stable, wall_lr = read_blend(run, row), read_stable(run, row), read_wall(run, row)
                if not answer:
                    continue
                reading = wall_reading(run, every=2)
                onecycle = float(row["schedule"] == "onecycle")
                horizon = math.log10(row["steps"] / row["num_training"])
                features = {
                    "1": 1.0, "sgd": float(row["optimizer"] in SGD), "onecycle": onecycle, "log T/n": horizon,
                    "onecycle x log T/n": onecycle * horizon, "fall": min(_fall(run), 1.0),
                    "log s/w": math.log10(stable / wall_lr) if stable and wall_lr else 0.0,
                    "flat": float(reading is not None and reading.descent_lr is None),
                }  # fmt: skip
                kind = "onecycle" if onecycle else ("long" if row["steps"] > 3 * row["num_training"] else "short")
                error = best - math.log10(answer)
                out.append({"group": group, "task": task, "family": row["family"], "kind": kind, "lr": answer,
                            "error": error, "oracle": oracle[task], "features": features})  # fmt: skip
    return out


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    penalty = RIDGE * np.eye(x.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(x.T @ x + penalty, x.T @ y)


def leave_one_family_out(rows: list[dict], names: tuple[str, ...]) -> list[float]:
    """Each run's predicted correction (decades) from a model fitted without its family."""
    x = np.array([[r["features"][n] for n in names] for r in rows])
    y = np.array([r["error"] for r in rows])
    families = np.array([r["family"] for r in rows])
    predicted = np.zeros(len(rows))
    for family in sorted(set(families)):
        held = families == family
        predicted[held] = x[held] @ _fit(x[~held], y[~held])
    return predicted.tolist()


def table(rows: list[dict], answers: dict[str, list[float]]) -> str:
    cells = sorted({(r["group"], r["kind"]) for r in rows}, key=lambda c: (GROUPS.index(c[0]), c[1]))
    lines = ["| group | kind | runs | " + " | ".join(f"{n} gap median / worst" for n in answers) + " |"]
    lines.append("|---" * (3 + len(answers)) + "|")
    for group, kind in [*cells, ("all", "all")]:
        picked = [i for i, r in enumerate(rows) if group == "all" or (r["group"], r["kind"]) == (group, kind)]
        row = [f"| {group} | {kind} | {len(picked)}"]
        for lrs in answers.values():
            gaps = [gap(rows[i]["oracle"], lrs[i]) for i in picked]
            row.append(f"{statistics.median(gaps):.3f} / {max(gaps):.3f}")
        lines.append(" | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    rows = runs()
    families = collections.Counter(r["family"] for r in rows)
    print(f"{len(rows)} runs, {len({r['task'] for r in rows})} tasks, {len(families)} families\n")
    y = np.array([r["error"] for r in rows])
    answers = {"blend (default)": [r["lr"] for r in rows]}
    for model, names in MODELS.items():
        x = np.array([[r["features"][n] for n in names] for r in rows])
        coef = _fit(x, y)
        explained = 1 - float(((y - x @ coef) ** 2).sum() / ((y - y.mean()) ** 2).sum())
        print(f"{model}: " + ", ".join(f"{n} {c:+.3f}" for n, c in zip(names, coef, strict=True)),
              f"(fitted on all: {explained:.0%} of the error's variance)")  # fmt: skip
        predicted = leave_one_family_out(rows, names)
        answers[f"{model} (LOFO)"] = [r["lr"] * 10**p for r, p in zip(rows, predicted, strict=True)]
    print()
    print(table(rows, answers))


if __name__ == "__main__":
    main()
