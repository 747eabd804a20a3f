"""The horizon and rescale benchmark tasks build, train and score (shrunk to a few steps; no figure asserted)."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
horizon_tasks = pytest.importorskip("horizon_tasks")
lr_horizon = pytest.importorskip("lr_horizon")
lr_rescale = pytest.importorskip("lr_rescale")


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
    oracle = lr_horizon.Oracle(tmp_path / "cache.json")
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
