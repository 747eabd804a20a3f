"""Exact restore of model, optimizer, scheduler, RNG and mode state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from traenslenzor.tuner.state import TrainingState, preserved_loader_generators, preserved_training_state


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))


def _train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler=None, steps: int = 3) -> None:
    model.train()
    for _ in range(steps):
        x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def _fingerprint(model, optimizer, scheduler):
    tensors = [t.detach().clone() for t in model.state_dict().values()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    opt = optimizer.state_dict()
    opt_state = {
        k: {n: (v.clone() if torch.is_tensor(v) else v) for n, v in s.items()} for k, s in opt["state"].items()
    }
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]
    modes = [m.training for m in model.modules()]
    return tensors, grads, opt_state, groups, scheduler.state_dict(), modes


def _assert_same(a, b) -> None:
    for x, y in zip(a[0], b[0], strict=True):
        assert torch.equal(x, y)
    for x, y in zip(a[1], b[1], strict=True):
        assert (x is None and y is None) or torch.equal(x, y)
    assert a[2].keys() == b[2].keys()
    for k in a[2]:
        for n in a[2][k]:
            va, vb = a[2][k][n], b[2][k][n]
            assert torch.equal(va, vb) if torch.is_tensor(va) else va == vb
    assert a[3] == b[3]
    assert a[4] == b[4]
    assert a[5] == b[5]


@pytest.fixture
def setup():
    model = _model()
    optimizer = torch.optim.AdamW(
        [{"params": model[0].parameters(), "lr": 1e-3}, {"params": model[4].parameters(), "lr": 1e-2}]
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[1e-2, 1e-1], total_steps=50)
    _train_steps(model, optimizer, scheduler, steps=2)  # non-trivial optimizer and scheduler state
    model[3].eval()  # a mixed train/eval mode must come back as it was
    return model, optimizer, scheduler


def test_restore_is_bitwise_exact_after_training(setup) -> None:
    model, optimizer, scheduler = setup
    before = _fingerprint(model, optimizer, scheduler)
    groups_before = optimizer.param_groups
    group_ids = [id(g) for g in optimizer.param_groups]
    state = TrainingState.capture(model, [optimizer], [scheduler])
    _train_steps(model, optimizer, scheduler, steps=4)
    model.eval()
    state.restore()
    _assert_same(before, _fingerprint(model, optimizer, scheduler))
    # The same group dicts: a scheduler holding them still sees the restored values.
    assert optimizer.param_groups is groups_before
    assert [id(g) for g in optimizer.param_groups] == group_ids


def test_restore_brings_back_empty_optimizer_state() -> None:
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with preserved_training_state(model, [optimizer]):
        _train_steps(model, optimizer)
        assert len(optimizer.state) > 0
    assert len(optimizer.state) == 0
    assert all(p.grad is None for p in model.parameters())


def test_rng_states_restored() -> None:
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    model = _model()
    # _model() consumed torch RNG; capture the state after it and compare against a replay from the same point.
    snapshot = torch.get_rng_state()
    with preserved_training_state(model):
        torch.rand(100), np.random.rand(100), random.random()
    assert torch.equal(torch.get_rng_state(), snapshot)
    assert np.random.rand(3).tolist() == expected[1].tolist()
    assert random.random() == expected[2]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_restored_when_block_raises(setup, error) -> None:
    model, optimizer, scheduler = setup
    before = _fingerprint(model, optimizer, scheduler)
    with pytest.raises(type(error)), preserved_training_state(model, [optimizer], [scheduler]):
        _train_steps(model, optimizer, scheduler, steps=2)
        raise error
    _assert_same(before, _fingerprint(model, optimizer, scheduler))


def test_preserved_loader_generators_puts_back_every_shuffle_generator() -> None:
    data = TensorDataset(torch.arange(20.0))
    loader_gen, sampler_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    sampler = BatchSampler(RandomSampler(data, generator=sampler_gen), batch_size=4, drop_last=False)
    loader = DataLoader(data, batch_sampler=sampler, generator=loader_gen)
    before = (loader_gen.get_state(), sampler_gen.get_state())
    with preserved_loader_generators(loader):
        list(loader)
        list(loader)
        assert not torch.equal(sampler_gen.get_state(), before[1])  # the block did draw from it
    assert torch.equal(loader_gen.get_state(), before[0])
    assert torch.equal(sampler_gen.get_state(), before[1])
