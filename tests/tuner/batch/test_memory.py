"""Memory measurement against known allocations, and the budget's validation and resolution."""

from __future__ import annotations

import resource

import pytest
import torch

from traenslenzor.tuner.batch.memory import (
    PeakMemoryMeter,
    _status_kib,
    as_device,
    available_memory,
    check_max_memory,
    cpu_peak_supported,
    device_total_memory,
    physical_memory,
    resolve_budget,
)

MIB = 2**20
needs_proc = pytest.mark.skipif(not cpu_peak_supported(), reason="needs Linux /proc/self/clear_refs")


@needs_proc
def test_cpu_peak_matches_a_known_allocation() -> None:
    meter = PeakMemoryMeter("cpu")
    meter.start()
    before = _status_kib("VmRSS")
    block = torch.ones(64 * MIB // 4)  # 64 MiB, every page written
    del block
    peak = meter.stop()
    assert peak is not None and before is not None
    assert 60 * MIB <= peak - before <= 64 * MIB + 12 * MIB


@needs_proc
def test_cpu_peak_is_reset_between_measurements() -> None:
    meter = PeakMemoryMeter("cpu")
    meter.start()
    block = torch.ones(96 * MIB // 4)
    del block
    first = meter.stop()
    meter.start()
    before = _status_kib("VmRSS")
    small = torch.ones(8 * MIB // 4)
    del small
    second = meter.stop()
    assert second - before <= 8 * MIB + 12 * MIB  # the earlier 96 MiB peak is forgotten
    assert first > second - 60 * MIB


def test_unsupported_device_measures_nothing() -> None:
    meter = PeakMemoryMeter("meta")
    meter.start()
    assert meter.stop() is None


def test_cpu_totals() -> None:
    assert as_device(None) == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    total = device_total_memory("cpu")
    assert 0 < total <= physical_memory()
    assert 0 < available_memory("cpu") <= total
    assert device_total_memory("meta") is None


@needs_proc
def test_address_space_limit_lowers_the_cpu_budget() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size, rss = _status_kib("VmSize"), _status_kib("VmRSS")
    resource.setrlimit(resource.RLIMIT_AS, (size + 512 * MIB, hard))
    try:
        budget = available_memory("cpu")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    # limit - (mapped but not resident) = rss + 512 MiB, up to the few pages the reads themselves touch
    assert abs(budget - (rss + 512 * MIB)) < 8 * MIB


@pytest.mark.parametrize("bad", [0.0, 1.5, float("nan"), -0.5, 0, 100, -(2**30), True, "8GB"])
def test_bad_max_memory_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="max_memory"):
        check_max_memory(bad)


def test_budget_resolution() -> None:
    assert resolve_budget(2**30, "cpu") == 2**30
    assert resolve_budget(0.5, "cpu") == int(0.5 * device_total_memory("cpu"))
    assert resolve_budget(1.0, "cpu") == device_total_memory("cpu")
    assert resolve_budget(None, "cpu") == pytest.approx(available_memory("cpu"), rel=0.01)
    with pytest.raises(ValueError, match="unknown"):
        resolve_budget(0.5, "meta")


def test_cuda_budget_honours_a_per_process_memory_fraction(monkeypatch) -> None:
    """The driver reports 60 GiB free, but set_per_process_memory_fraction(0.25) of 80 GiB caps the allocator at 20."""
    gib = 2**30
    total = type("Props", (), {"total_memory": 80 * gib})()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (60 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2 * gib)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: total)
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda device=None: 1.0)
    assert available_memory("cuda:0") == 62 * gib

    def fraction(device):  # as torch's: a plain "cuda" (no index) is a ValueError
        if not isinstance(device, int) and torch.device(device).index is None:
            raise ValueError(f"Expected a torch.device with a specified index or an integer, but got:{device}")
        return 0.25

    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", fraction)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert available_memory("cuda:0") == 20 * gib
    assert resolve_budget(None, "cuda") == 20 * gib
