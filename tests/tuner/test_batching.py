"""Unit tests for how the plain-PyTorch entry points locate a model (``batching.model_device``)."""

from __future__ import annotations

import torch
from torch import nn

from traenslenzor.tuner.batching import model_device


def test_model_device_reads_parameters_then_buffers_then_defaults_to_cpu() -> None:
    assert model_device(nn.Linear(2, 1).to(torch.float64)) == torch.device("cpu")
    buffers_only = nn.BatchNorm1d(3, affine=False).to("meta")  # no parameters, running stats on "meta"
    assert model_device(buffers_only) == torch.device("meta")
    assert model_device(nn.Identity()) == torch.device("cpu")
