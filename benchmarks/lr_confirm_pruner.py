"""Why the LR confirmation runs its own rung schedule rather than Optuna's SuccessiveHalvingPruner (issue 21).

Optuna's pruner is asynchronous (ASHA): trials run one after another, and a trial goes on past a rung when it is
in the best 1/reduction of the trials that reached that rung *so far* -- the first trial is never pruned. How many
steps it trains depends on the order the candidates come in. This simulation counts them for the confirmation's
default plan at 2000 planned steps (6 candidates, s0 = 41 steps, reduction 3, the last rung at 3 x s0 = 123): each
trial reports a validation loss at every multiple of s0, a parabola in log LR that shrinks with the steps (no
training: only the pruner's decisions are measured). Orders: the grid's (ascending LR), descending, 20 random.

Run: ``python -m benchmarks.lr_confirm_pruner``.
"""

import math
import random

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
cands = [10 ** (k / 4) for k in range(-16, -10)]
s0, top = 41, 123


def loss(lr: float, step: int, best: float = 3e-3) -> float:
    return 0.5 + math.log10(lr / best) ** 2 * (1 + 30 / step) + 5 / step


def run(order: list[float]) -> int:
    """Training steps the pruner lets the candidates run, in ``order``."""
    study = optuna.create_study(pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=s0, reduction_factor=3))
    spent = 0
    for lr in order:
        t = study.ask()
        pruned = False
        for step in range(1, top + 1):
            spent += 1
            if step % s0 == 0:
                t.report(loss(lr, step), step)
                if t.should_prune():
                    pruned = True
                    break
        if pruned:
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(t, loss(lr, top))
    return spent


ours = 6 * s0 + 2 * 3 * s0
asc, desc = run(cands), run(cands[::-1])
rnd = [run(random.Random(i).sample(cands, 6)) for i in range(20)]
print(f"ours (synchronous, 6 x {s0} + 2 x {3 * s0}): {ours} steps")
print(f"Optuna SuccessiveHalvingPruner: grid order (ascending) {asc}, descending {desc}")
print(f"  20 random orders: median {sorted(rnd)[10]}, min {min(rnd)}, max {max(rnd)}")
