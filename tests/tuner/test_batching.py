"""Unit tests for ``batching``: where a model lives, and the endless batch cycle every search draws from."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from torch import nn

from traenslenzor.tuner.batching import concat_batches, cycle, model_device


def test_model_device_reads_parameters_then_buffers_then_defaults_to_cpu() -> None:
    assert model_device(nn.Linear(2, 1).to(torch.float64)) == torch.device("cpu")
    buffers_only = nn.BatchNorm1d(3, affine=False).to("meta")  # no parameters, running stats on "meta"
    assert model_device(buffers_only) == torch.device("meta")
    assert model_device(nn.Identity()) == torch.device("cpu")


def test_cycle_restarts_the_loader_at_each_epoch_boundary() -> None:
    batches = cycle([1, 2, 3])
    assert [next(batches) for _ in range(7)] == [1, 2, 3, 1, 2, 3, 1]


@pytest.mark.parametrize(("loader", "match"), [([], "dataset size"), (iter([1, 2]), "one-shot iterator")])
def test_cycle_names_the_fix_when_a_pass_yields_nothing(loader, match) -> None:
    batches = cycle(loader, error=LookupError)
    with pytest.raises(LookupError, match=match):
        for _ in range(5):
            next(batches)


def test_concat_batches_joins_along_the_first_dimension_and_keeps_the_structure() -> None:
    a, b = torch.arange(6.0).reshape(2, 3), torch.arange(6.0, 15.0).reshape(3, 3)
    assert torch.equal(concat_batches([a, b]), torch.cat([a, b]))
    pair = concat_batches([(a, torch.tensor([0, 1])), (b, torch.tensor([2, 3, 4]))])
    assert isinstance(pair, tuple) and torch.equal(pair[1], torch.arange(5))
    joined = concat_batches([{"x": a, "y": [a]}, {"x": b, "y": [b]}])
    assert torch.equal(joined["x"], torch.cat([a, b])) and torch.equal(joined["y"][0], torch.cat([a, b]))
    Batch = namedtuple("Batch", "x y")
    nt = concat_batches([Batch(a, a), Batch(b, b)])
    assert isinstance(nt, Batch) and nt.x.shape == (5, 3)
    # what cannot be joined gives None: other trailing shapes, scalars, strings, differing keys or lengths
    assert concat_batches([a, torch.zeros(2, 4)]) is None
    assert concat_batches([torch.tensor(1.0), torch.tensor(2.0)]) is None
    assert concat_batches([(a, ["p.png", "q.png"]), (b, ["r.png"])]) is None
    assert concat_batches([{"x": a}, {"z": b}]) is None
    assert concat_batches([(a,), (a, a)]) is None
