"""The horizon and rescale benchmark tasks build, train and score (shrunk to a few steps; no figure asserted)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from benchmarks import horizon_tasks, lr_horizon, lr_rescale


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
