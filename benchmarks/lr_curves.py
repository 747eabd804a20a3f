"""Record LR range-test curves once, so that readings of them can be compared without re-running the finder.

For every task and finder seed, ``find_lr`` runs as a user calls it (default settings, the task's range and
``num_training``), and the curve is stored with everything a reading may use: the LRs, the raw and smoothed training
loss, and the loss of **each** of the fixed probe batches after every step (the default measures 4 and keeps their
mean; keeping them apart lets ``benchmarks.lr_readings`` try fewer batches, or a probe every k-th step, on the same
runs). Also the wall time of the run and of the same number of plain training steps (the cost reference).

Run: ``python -m benchmarks.lr_curves [--groups design,seen,new,families-design,families-holdout] [--seeds 5]``.
Writes ``benchmarks/results/lr_curves/<group>.json`` (one file per group, so that a group recorded later -- a
hold-out family -- is a file of its own, dated by its commit). ``--compare`` writes nothing: it runs ``find_lr`` as
users call it on every recorded task and seed and compares its answer and its length with the recording's (its
``find_lr`` entry, or ``default_lr`` where none was kept), scoring both against the oracles: what a change to the
range test moved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from benchmarks.common import RESULTS, quiet_loggers
from benchmarks.lr_reading import SEED0, _builders
from benchmarks.lr_reading import groups as reading_groups
from traenslenzor.tuner import find_lr
from traenslenzor.tuner.lr import finder as finder_module

OUT = RESULTS / "lr_curves"


def all_groups() -> dict[str, list]:
    """The benchmark's groups: design / seen / new (lr_reading), and the task families (design / hold-out)."""
    out = dict(reading_groups())
    try:
        from benchmarks import family_tasks as ft
    except ImportError:  # the families are not built on this branch yet
        return out
    out["families-design"] = [t for t in ft.FAMILY_TASKS if t.split == "design"]
    out["families-holdout"] = [t for t in ft.FAMILY_TASKS if t.split == "holdout"]
    return out


def builders(task):
    """(data, make_model, make_optimizer, make_loader, loss) for a task of any module."""
    if type(task).__module__.endswith("family_tasks"):
        from benchmarks import family_tasks as ft

        data, make_model, make_optimizer, make_loader, loss = ft.builders(task)
        return data, make_model, (lambda m: make_optimizer(m, 1e-3)), make_loader, loss
    return _builders(task)


class _ProbeRecorder:
    """Wraps the finder's probe pass to keep each batch's loss (the finder itself still gets their mean)."""

    def __init__(self) -> None:
        self.per_batch: list[list[float]] = []

    @torch.no_grad()
    def __call__(self, model, compute_loss, probe, autocast, device) -> float:
        values = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(finder_module.PROBE_SEED)  # as the finder: the same RNG draws every pass
            for batch in probe:
                with autocast():
                    values.append(float(compute_loss(model, batch).detach().float()))
        self.per_batch.append(values)
        return sum(values) / len(values)


@contextlib.contextmanager
def recording_probe() -> Iterator[_ProbeRecorder]:
    """The finder's probe measured after every step, each set-aside batch apart (not joined), and kept: the
    densest curve, from which ``benchmarks.lr_readings`` simulates sparser probes."""
    recorder = _ProbeRecorder()

    class Apart(finder_module._Probe):
        def __init__(self, batches, move, device) -> None:
            super().__init__(batches, move, device)
            self.batches = [move(b, device) for b in batches]

    saved = finder_module._probe_loss, finder_module._Probe, finder_module.probe_due
    finder_module._probe_loss, finder_module._Probe = recorder, Apart
    finder_module.probe_due = lambda step: True
    try:
        yield recorder
    finally:
        finder_module._probe_loss, finder_module._Probe, finder_module.probe_due = saved


def _plain_seconds(make_model, make_optimizer, make_loader, loss_fn, steps: int, seed: int) -> float:
    """Wall time of ``steps`` plain training steps (zero_grad, forward, backward, step, loss.item())."""
    torch.manual_seed(seed)
    model = make_model(seed)
    optimizer = make_optimizer(model)
    model.train()
    batches = iter(make_loader(seed))
    start = time.perf_counter()
    for _ in range(steps):
        try:
            inputs, targets = next(batches)
        except StopIteration:
            batches = iter(make_loader(seed))
            inputs, targets = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        loss.item()
    return time.perf_counter() - start


def _round(values) -> list:
    return [None if not math.isfinite(v) else float(f"{v:.6g}") for v in values]


def _find_lr(task, make_model, make_optimizer, make_loader, loss, seed: int):
    """``find_lr`` on a fresh model as users call it (the task's range and steps); (result, seconds)."""
    model = make_model(seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = find_lr(
            model, make_optimizer(model), loss, make_loader(seed), min_lr=task.finder_range[0],
            max_lr=task.finder_range[1], num_training=task.num_training, progress_bar=False,
        )  # fmt: skip
    return result, time.perf_counter() - start


def record_task(task, seeds: int) -> dict:
    _data, *built = builders(task)
    make_model, make_optimizer, make_loader, loss = built
    runs = []
    for seed in range(SEED0, SEED0 + seeds):
        with recording_probe() as recorder:
            result, seconds = _find_lr(task, *built, seed)
        plain = _plain_seconds(make_model, make_optimizer, make_loader, loss, len(result.lrs), seed)
        real, real_seconds = _find_lr(task, *built, seed)  # as users call it: the default probe, unpatched
        runs.append(
            {
                "seed": seed,
                "lrs": _round(result.lrs),
                "raw": _round(result.raw_losses),
                "smooth": _round(result.losses),
                "probe": [_round(v) for v in recorder.per_batch],
                "stop_reason": str(result.stop_reason),
                "adaptive": result.metadata.get("adaptive_range"),
                "seconds": seconds,
                "plain_seconds": plain,
                "default_lr": result.suggestion(),
                "stable_lr": result.suggestion(method="stable"),
                "find_lr": {
                    "lr": real.suggestion(),
                    "band": real.band,
                    "method": real.suggestion_outcome().method,
                    "parts": real.blend_parts(),
                    "steps": len(real.lrs),
                    "seconds": real_seconds,
                    "findings": [f.code for f in real.diagnostics()],
                },
            }
        )
    horizon = getattr(task, "steps", None)
    return {
        "task": task.name,
        "module": type(task).__module__.split(".")[-1],
        "family": getattr(task, "family", None) or getattr(task, "model", None),
        "optimizer": task.optimizer,
        "schedule": getattr(task, "schedule", "constant"),
        "steps": horizon,
        "num_training": task.num_training,
        "runs": runs,
    }


def compare(groups: list[str], wanted: set[str]) -> None:
    """``find_lr`` now against the recorded answers, per run; a markdown table of the runs that moved."""
    from benchmarks.lr_readings import gap, load, oracles

    curves = load(groups)
    oracle = oracles({t for rows in curves.values() for t in rows})
    available = {t.name: t for g in groups for t in all_groups()[g]}
    same = moved = 0
    lines = ["| group | task | seed | recorded LR (gap, steps) | now (gap, steps) |", "|---|---|---|---|---|"]
    for group, rows in curves.items():
        for name, row in rows.items():
            if (wanted and name not in wanted) or name not in available or name not in oracle:
                continue
            built = builders(available[name])[1:]
            for run in row["runs"]:
                before = run.get("find_lr") or {"lr": run["default_lr"], "steps": len(run["lrs"])}
                result, _ = _find_lr(available[name], *built, run["seed"])
                now = result.suggestion()
                if now == before["lr"] and len(result.lrs) == before["steps"]:
                    same += 1
                    continue
                moved += 1
                lines.append(
                    f"| {group} | {name} | {run['seed']} | {before['lr'] or math.nan:.3e} "
                    f"({gap(oracle[name], before['lr']):.3f}, {before['steps']}) | {now or math.nan:.3e} "
                    f"({gap(oracle[name], now):.3f}, {len(result.lrs)}) |"
                )
            print(f"  {group} {name}: {same} same, {moved} moved so far", flush=True)
    print(f"\n{same} runs answered as recorded, {moved} moved\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", default="design,seen,new")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", default="", help="only these task names (comma-separated)")
    parser.add_argument("--compare", action="store_true", help="re-run find_lr and compare; write nothing")
    args = parser.parse_args(argv)
    quiet_loggers()
    torch.set_num_threads(1)
    if args.compare:
        compare(args.groups.split(","), set(filter(None, args.tasks.split(","))))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = set(filter(None, args.tasks.split(",")))
    available = all_groups()
    for group in args.groups.split(","):
        path = Path(OUT / f"{group}.json")
        rows = json.loads(path.read_text()) if path.exists() else {}
        for task in available[group]:
            if wanted and task.name not in wanted:
                continue
            start = time.perf_counter()
            rows[task.name] = record_task(task, args.seeds)
            print(f"  {group} {task.name}: {time.perf_counter() - start:.1f} s", flush=True)
            path.write_text(json.dumps(rows, separators=(",", ":")))


if __name__ == "__main__":
    main()
