"""A curvature anchor: the critical LR of the first update against the grid's best (issue 26, the notes' direction 2).

The research notes (``../shared/research/lr_stability.md``, "Three most promising directions", 2) propose an anchor
that needs no learning progress, for the flat starts where a range test has no descent to read: the **critical LR**
``eta_c`` -- the smallest step along the optimizer's own first update that raises the loss of a fixed batch (Kalra
et al. 2026 estimate it by a line search in a few forward passes). The question here is only whether such an anchor
carries the best LR across task families better than the default's reading does, before anything is built on it.

For every recorded task and finder seed of ``benchmarks.lr_curves`` (5 groups, 72 tasks, 18 families): the task's
fresh model (seed), its optimizer, and the first 4 batches of its loader joined (the default probe's batches). The
first update at unit LR (every group at its ratio) gives the direction ``d`` (SGD: the negative gradient; Adam-like:
about its sign); the loss of the fixed batch at ``theta + eta d`` is measured on a 0.25-decade grid from 1e-9 up,
then bisected 4 times: ``eta_c`` is where it first exceeds the loss at ``eta = 0`` by more than ``RISE`` of it (the
first run compared without a tolerance, and float32 rounding at steps of 1e-9 read as rises: 6-8 decades off).
Printed per family: the median ``log10(best / eta_c)`` and the default's ``log10(best / blend)`` with their spread
over the family's runs, then the gap (0 = the grid's best, 1 = useless) of the anchor's LR ``eta_c x 10**offset``
with the offset the median over the **other** families (leave-one-family-out), beside ``blend``'s.

Run: ``python -m benchmarks.lr_critical`` (a few minutes; reads ``benchmarks/results/lr_curves/`` and the oracles).
"""

from __future__ import annotations

import collections
import copy
import math
import statistics

import torch

from benchmarks.lr_curves import all_groups, builders
from benchmarks.lr_reading_rules import blend, rule, wall
from benchmarks.lr_readings import best_lr, gap, load, oracles
from traenslenzor.tuner.batching import concat_batches
from traenslenzor.tuner.lr.param_groups import group_lr_ratios, set_group_lrs

GROUPS = ("design", "seen", "new", "families-design", "families-holdout")
GRID = [10 ** (k / 4) for k in range(-36, 9)]  # 1e-9 .. 1e2
RISE = 1e-3  # a relative rise of the fixed batch's loss above rounding


def _loss(model, loss_fn, batch) -> float:
    x, y = batch
    with torch.no_grad():
        return float(loss_fn(model(x), y))


def critical_lr(model, optimizer, loss_fn, batch) -> float | None:
    """The smallest step along the first unit-LR update that raises the fixed batch's loss (None: none up to 1e2)."""
    model.train()
    start = copy.deepcopy(model.state_dict())
    ratios = group_lr_ratios(optimizer)
    set_group_lrs(optimizer, 1.0, ratios)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.zero_grad(set_to_none=True)
    x, y = batch
    loss_fn(model(x), y).backward()
    optimizer.step()
    direction = [p.detach() - b for p, b in zip(model.parameters(), before, strict=True)]
    model.load_state_dict(start)
    torch.manual_seed(0)
    base = _loss(model, loss_fn, batch)
    limit = base + RISE * abs(base)

    def at(eta: float) -> float:
        with torch.no_grad():
            for p, b, d in zip(model.parameters(), before, direction, strict=True):
                p.copy_(b + eta * d)
        torch.manual_seed(0)
        value = _loss(model, loss_fn, batch)
        return value if math.isfinite(value) else math.inf

    try:
        low = None
        for eta in GRID:
            if at(eta) > limit:
                break
            low = eta
        else:
            return None
        high = eta
        low = low or high / 10**0.25
        for _ in range(4):
            mid = math.sqrt(low * high)
            low, high = (mid, high) if at(mid) <= limit else (low, mid)
        return high
    finally:
        model.load_state_dict(start)


def runs() -> list[dict]:
    curves = load(list(GROUPS))
    oracle = oracles({t for rows in curves.values() for t in rows})
    tasks = {t.name: t for g in GROUPS for t in all_groups()[g]}
    read_blend = blend(rule("stable"), wall(every=2))
    out = []
    for group, rows in curves.items():
        for name, row in rows.items():
            if name not in oracle or name not in tasks:
                continue
            _data, make_model, make_optimizer, make_loader, loss_fn = builders(tasks[name])
            for run in row["runs"]:
                seed = run["seed"]
                torch.manual_seed(seed)
                model = make_model(seed)
                loader = iter(make_loader(seed))
                batch = concat_batches([next(loader) for _ in range(4)])
                eta = critical_lr(model, make_optimizer(model), loss_fn, batch)
                out.append({"group": group, "task": name, "family": row["family"], "seed": seed,
                            "eta_c": eta, "blend": read_blend(run, row), "best": best_lr(oracle[name]),
                            "oracle": oracle[name]})  # fmt: skip
            print(f"  {group} {name}: eta_c {statistics.median([r['eta_c'] or math.nan for r in out[-5:]]):.2e}, "
                  f"best {out[-1]['best']:.2e}", flush=True)  # fmt: skip
    return out


def main() -> None:
    rows = [r for r in runs() if r["eta_c"] and r["blend"]]
    for r in rows:
        r["offset"] = math.log10(r["best"] / r["eta_c"])
        r["error"] = math.log10(r["best"] / r["blend"])
    families = collections.defaultdict(list)
    for r in rows:
        families[r["family"]].append(r)
    print("\n| family | runs | log10(best / eta_c) median (min .. max) | log10(best / blend) median (min .. max) |")
    print("|---|---|---|---|")
    for family, rs in sorted(families.items()):
        o, e = [r["offset"] for r in rs], [r["error"] for r in rs]
        print(f"| {family} | {len(rs)} | {statistics.median(o):+.2f} ({min(o):+.2f} .. {max(o):+.2f}) | "
              f"{statistics.median(e):+.2f} ({min(e):+.2f} .. {max(e):+.2f}) |")  # fmt: skip
    medians = {f: statistics.median(r["offset"] for r in rs) for f, rs in families.items()}
    spread = lambda v: max(v) - min(v)  # noqa: E731
    print(f"\nspread of the families' medians: anchor {spread(list(medians.values())):.2f} decades, blend "
          f"{spread([statistics.median(r['error'] for r in rs) for rs in families.values()]):.2f}")  # fmt: skip
    by = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in rows:
        others = statistics.median(m for f, m in medians.items() if f != r["family"])
        anchor = r["eta_c"] * 10**others
        mixed = math.sqrt(anchor * r["blend"])
        for name, lr in (("blend", r["blend"]), ("anchor (LOFO)", anchor), ("middle of both", mixed)):
            by[r["group"]][name].append(gap(r["oracle"], lr))
    print("\n| group | runs | blend gap median / worst | anchor (LOFO) | middle of both |")
    print("|---|---|---|---|---|")
    for group in GROUPS:
        if group in by:
            cells = " | ".join(f"{statistics.median(v):.3f} / {max(v):.3f}" for v in by[group].values())
            print(f"| {group} | {len(by[group]['blend'])} | {cells} |")


if __name__ == "__main__":
    main()
