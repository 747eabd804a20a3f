"""Unit tests for ``batching``: where a model lives, and the endless batch cycle every search draws from."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from traenslenzor.tuner.batching import cycle, model_device


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
