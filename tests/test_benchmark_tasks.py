"""The horizon and rescale benchmark tasks build, train and score (shrunk to a few steps; no figure asserted)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from benchmarks import family_tasks, horizon_tasks, lr_horizon, lr_rescale


def _tiny(task):
    return replace(task, steps=3, n_train=64, n_eval=32, num_training=12, oracle_seeds=1, batch_size=8)


@pytest.mark.parametrize("task", horizon_tasks.TASKS + lr_rescale.TASKS, ids=lambda t: t.name)
def test_every_task_trains_with_every_method(task):
    pytest.importorskip("prodigyopt")
    pytest.importorskip("schedulefree")
    tiny = _tiny(task)
    data = horizon_tasks.make_data(tiny)
    methods = [("grid", 1e-3), *((m, None) for m in horizon_tasks.INSTEAD)]
    for method, lr in methods if task.model != "alexnet" else methods[:1]:  # alexnet: 57M parameters, one is enough
        loss, acc = horizon_tasks.train(tiny, data, 0, method=method, lr=lr)
        assert math.isfinite(loss) and loss > 0
        assert (acc is None) == (not tiny.classification)


def test_task_names_are_unique_and_holdouts_apart():
    names = [t.name for t in horizon_tasks.TASKS]
    assert len(names) == len(set(names))
    assert all(t.split == "holdout" for t in horizon_tasks.HOLDOUT_TASKS)
    assert all(t.split == "design" for t in horizon_tasks.DESIGN_TASKS)
    assert all(t.steps >= 3000 for t in horizon_tasks.TASKS if t.group == "long")  # >= 10 x the tuner's 300 steps
    assert all(t.schedule == "onecycle" for t in horizon_tasks.TASKS if t.group in ("onecycle", "app"))


def test_oracle_and_finders_score_a_tiny_task(tmp_path):
    pytest.importorskip("torch_lr_finder")
    task = replace(_tiny(horizon_tasks.TASKS_BY_NAME["oc_mlp_adamw"]), lattice=(-12, -8))
    oracle = lr_horizon.Lattice(tmp_path / "cache.json")
    result = lr_horizon.run_task(task, oracle, seeds=[0])
    run = result["runs"][0]
    assert set(run["scores"]) == {"ours", "valley", "lightning", "torch_lr_finder"}
    assert all(s["gap"] <= 1.0 for s in run["scores"].values())
    assert run["forward_calls"] >= 1
    assert result["best"]["loss"] <= min(v[0] for v in result["grid"].values())
    assert (tmp_path / "cache.json").exists()
    assert "ours" in lr_horizon.report([result])


def test_rescale_rule_per_task_family():
    rules = {t.name: lr_rescale.rule_of(t) for t in lr_rescale.TASKS}
    assert rules["rs_mlp_sgdm"] == "linear"
    assert rules["rs_mlp_adam"] == "sqrt"
    tiny = lr_rescale.at_batch(lr_rescale.TASKS[0], 128)
    assert tiny.steps * 128 == lr_rescale.BASE_STEPS * lr_rescale.BASE_BATCH


def test_the_oracle_extends_its_seeds_and_saves_only_its_own_tasks(tmp_path):
    from benchmarks.oracle import Oracle

    class Task:
        name = "t"

        def key(self) -> str:
            return "k1"

    path = tmp_path / "cache.json"
    path.write_text('{"k0": {"name": "other"}, "k1": {"name": "t", "runs": {"a": [10]}}}')
    oracle = Oracle(path)
    table = oracle.entry(Task(), runs={})["runs"]
    assert oracle.seeds(table, "a", range(3), lambda seed: seed * 100) == [10, 100, 200]  # seed 0 was cached
    path.write_text('{"k0": {"name": "changed by another run"}, "k1": {}}')
    oracle.save()
    saved = json.loads(path.read_text())
    assert saved == {"k0": {"name": "changed by another run"}, "k1": {"name": "t", "runs": {"a": [10, 100, 200]}}}
    joined = Oracle(tmp_path / "own.json", read_also=path)  # reads another oracle's results, writes its own file
    assert joined.entry(Task())["runs"] == {"a": [10, 100, 200]}
    joined.save()
    assert json.loads((tmp_path / "own.json").read_text()) == {"k1": saved["k1"]}


@pytest.mark.parametrize("task", family_tasks.FAMILY_TASKS, ids=lambda t: t.name)
def test_every_family_task_builds_and_one_batch_trains(task):
    tiny = replace(task, n_train=64, n_eval=32)
    data, make_model, make_optimizer, make_loader, loss_fn = family_tasks.builders(tiny)
    model = make_model(0)
    optimizer = make_optimizer(model, 1e-3)
    inputs, targets = next(iter(make_loader(0)))
    assert len(inputs) == len(targets) == task.batch_size
    loss = loss_fn(model(inputs), targets)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    loss.backward()
    optimizer.step()
    from benchmarks import family_oracle

    held_out, accuracy = family_oracle.train(replace(tiny, steps=3), data, 0, lr=1e-3)  # with the task's schedule
    assert math.isfinite(held_out) and (accuracy is None) == (not task.classification)


def test_family_tasks_split_by_family_and_cover_three_budgets():
    tasks = family_tasks.FAMILY_TASKS
    assert (
        len({t.name for t in tasks})
        == len(tasks)
        == 3 * len(family_tasks.DESIGN_FAMILIES + family_tasks.HOLDOUT_FAMILIES)
    )
    assert {t.family for t in tasks if t.split == "design"} == set(family_tasks.DESIGN_FAMILIES)
    assert {t.family for t in tasks if t.split == "holdout"} == set(family_tasks.HOLDOUT_FAMILIES)
    for family in family_tasks.DESIGN_FAMILIES + family_tasks.HOLDOUT_FAMILIES:
        groups = {t.group: t for t in tasks if t.family == family}
        assert 200 <= groups["short"].steps <= 300 and 1000 <= groups["long"].steps <= 5000
        assert groups["onecycle"].schedule == "onecycle" and 2000 <= groups["onecycle"].steps <= 3000


def test_family_oracle_caches_and_scores_without_training(tmp_path):
    from benchmarks import family_oracle

    task = replace(family_tasks.TASKS_BY_NAME["poisson_onecycle_adam"], steps=3, n_train=64, n_eval=32)
    task = replace(task, lattice=(-12, -8), oracle_seeds=1, batch_size=8)
    lattice = family_oracle.FamilyLattice(tmp_path / "cache.json")
    with pytest.raises(LookupError, match="--oracle --tasks poisson_onecycle_adam"):
        family_tasks.gap(task, 1e-3, lattice)
    data = family_tasks.make_data(task)
    lattice.untrained(task, data)
    lattice.build(task, data)
    lattice.extend_edges(task, data)
    lattice.save()
    ks, (low, high) = sorted(lattice.evaluated(task)), lattice.edge_gaps(task)
    assert low >= family_oracle.EDGE_GAP or ks[0] <= -12 - family_oracle.EDGE_LIMIT  # the ends are bad or far out
    assert high >= family_oracle.EDGE_GAP or ks[-1] >= -8 + family_oracle.EDGE_LIMIT
    cached = family_oracle.FamilyLattice(tmp_path / "cache.json")  # a fresh reader of the file: no training
    best = family_tasks.best_lr(task, cached)
    assert best == lattice.best(task)["lr"]
    assert family_tasks.gap(task, best, cached) == 0.0
    assert family_tasks.gap(task, None, cached) == 1.0
    assert 0.0 <= family_tasks.gap(task, best * 1e6, cached) <= 1.0
