"""The trial runner and the plain-PyTorch entry point: OOM handling, caps, budget, restore, errors."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import typing

import pytest
import torch
from torch import nn

from traenslenzor.tuner.batch.finder import find_batch_size
from traenslenzor.tuner.batch.memory import _status_kib, cpu_peak_supported
from traenslenzor.tuner.batch.result import BatchSizeResult
from traenslenzor.tuner.batch.runner import BatchSearchSettings, BatchSizeNotFoundError, search_batch_size
from traenslenzor.tuner.batch.search import SEARCH_POLICIES, BatchSizeMode
from traenslenzor.tuner.oom import free_memory

MIB = 2**20


class FakeDevice:
    """``run_trial`` that raises a real CUDA OOM error from ``oom_from`` and records every call."""

    def __init__(self, oom_from: float = float("inf"), error: BaseException | None = None):
        self.oom_from = oom_from
        self.error = error
        self.calls: list[int] = []
        self.restores = 0

    def run_trial(self, size: int) -> float | None:
        self.calls.append(size)
        if self.error is not None:
            raise self.error
        if size >= self.oom_from:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {size} MiB.")
        return None

    def restore(self) -> None:
        self.restores += 1


def no_clean_up() -> None:
    """The fake device holds no memory: nothing to collect (the real clean-up is tested on its own below)."""


def search(device: FakeDevice, **kwargs) -> BatchSizeResult:
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("clean_up", no_clean_up)
    return search_batch_size(device.run_trial, between_trials=device.restore, progress_bar=False, **kwargs)


def test_power_search_runs_trials_and_restores_after_each() -> None:
    fake = FakeDevice(oom_from=100)
    result = search(fake, mode="power")
    assert fake.calls == [2, 4, 8, 16, 32, 64, 128]
    assert result.batch_size == 64 and result.mode == "power"
    assert [t.fits for t in result.trials] == [True] * 6 + [False]
    assert "CUDA out of memory" in result.trials[-1].error
    assert fake.restores == 7


def test_init_val_is_the_first_trial_and_every_answer_ran() -> None:
    for mode in ("power", "binsearch", "auto", "throughput"):
        fake = FakeDevice(oom_from=50)
        result = search(fake, mode=mode, init_val=5)
        assert fake.calls[0] == 5
        assert result.chosen_trial.fits  # raises StopIteration if the chosen size never ran


def test_max_val_and_dataset_caps() -> None:
    fake = FakeDevice()
    assert search(fake, mode="power", max_val=100).batch_size == 100
    assert fake.calls[-1] == 100
    fake = FakeDevice()
    assert search(fake, mode="binsearch", dataset_len=37, margin=0.0).batch_size == 37
    assert max(fake.calls) == 37
    fake = FakeDevice()
    assert search(fake, mode="power", init_val=64, dataset_len=10).batch_size == 10
    assert fake.calls == [10]


def test_max_trials_stops_with_a_tried_size() -> None:
    fake = FakeDevice()
    result = search(fake, mode="power", max_trials=3)
    assert fake.calls == [2, 4, 8] and result.batch_size == 8
    assert "max_trials=3" in result.reason


def test_oom_at_size_one_is_a_clear_error() -> None:
    fake = FakeDevice(oom_from=1)
    with pytest.raises(BatchSizeNotFoundError, match="Even batch size 1") as info:
        search(fake, mode="binsearch")
    assert "16-mixed" in str(info.value) and "gradient accumulation" in str(info.value)
    assert "resolution" in str(info.value)
    assert fake.calls == [2, 1] and fake.restores == 2


def test_failed_trials_do_not_count_towards_max_trials() -> None:
    fake = FakeDevice(oom_from=20)
    result = search(fake, mode="binsearch", max_trials=6, margin=0.0)
    assert fake.calls == [2, 4, 8, 16, 32, 24, 20, 18, 19]  # 6 fits, 3 failures
    assert result.batch_size == 19


def test_no_fit_within_the_trial_cap_names_the_fix() -> None:
    fake = FakeDevice(oom_from=1)
    with pytest.raises(BatchSizeNotFoundError, match="max_trials=1"):
        search(fake, mode="power", init_val=2**20, max_val=2**20, max_trials=1)
    assert len(fake.calls) == 10  # hard cap 2 * max_trials + 8


@pytest.mark.parametrize("error", [ValueError("bad target shape"), RuntimeError("CUDA error: device-side assert")])
def test_non_oom_errors_propagate_after_restore(error: BaseException) -> None:
    fake = FakeDevice(error=error)
    with pytest.raises(type(error), match=str(error)):
        search(fake, mode="power")
    assert fake.calls == [2] and fake.restores == 1


def test_keyboard_interrupt_propagates_after_restore() -> None:
    fake = FakeDevice(error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        search(fake, mode="auto")
    assert fake.restores == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "exhaustive"}, "Unknown batch-size search mode"),
        ({"init_val": 0}, "init_val"),
        ({"max_val": 1, "init_val": 2}, "max_val"),
        ({"max_trials": 0}, "max_trials"),
        ({"margin": 1.0}, "margin"),
        ({"margin": -0.1}, "margin"),
        ({"steps_per_trial": 0}, "steps_per_trial"),
        ({"max_memory": 1.5}, "max_memory"),
        ({"dataset_len": 0}, "empty"),
    ],
)
def test_bad_arguments_fail_before_any_trial(kwargs: dict, match: str) -> None:
    fake = FakeDevice()
    with pytest.raises(ValueError, match=match):
        search(fake, **kwargs)
    assert fake.calls == []


def test_throughput_uses_the_timed_steps() -> None:
    # run_trial reports 0.5 s for steps 2..4 (3 timed steps) -> samples/s = 3 * b / 0.5 = 6 b
    result = search_batch_size(lambda b: 0.5, mode="power", max_val=8, steps_per_trial=4, progress_bar=False)
    assert [t.samples_per_sec for t in result.trials] == pytest.approx([12.0, 24.0, 48.0])


@pytest.mark.skipif(not cpu_peak_supported(), reason="needs Linux /proc/self/clear_refs")
@pytest.mark.parametrize("mode", ["binsearch", "auto"])
def test_real_cpu_budget_counts_overruns_as_not_fitting(mode: str) -> None:
    def allocate(size: int) -> None:
        block = torch.ones(size * MIB // 4)  # a trial needs `size` MiB more
        del block

    free_memory()  # the search trims the heap first; a baseline taken before that would be too high
    budget = _status_kib("VmRSS") + 40 * MIB
    # init_val 64 starts above the budget, so both modes meet an overrun (auto, aiming below its prediction,
    # would otherwise land under the budget without one)
    result = search_batch_size(allocate, mode=mode, max_memory=budget, device="cpu", progress_bar=False, init_val=64)
    over = [t for t in result.trials if not t.fits]
    assert over and all("exceeds the budget" in t.error for t in over)
    assert all(t.peak_memory <= budget for t in result.trials if t.fits)
    assert 30 <= result.batch_size <= 40


class Guarded(nn.Module):
    """A small model that raises the CPU allocator's OOM message for batches of ``oom_from`` or more."""

    def __init__(self, oom_from: int):
        super().__init__()
        self.oom_from = oom_from
        self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] >= self.oom_from:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")
        return self.body(x)


def _setup(oom_from: int) -> tuple[nn.Module, torch.optim.Optimizer, torch.utils.data.Dataset]:
    model = Guarded(oom_from)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = torch.utils.data.TensorDataset(torch.randn(200, 4), torch.randint(0, 3, (200,)))
    return model, optimizer, data


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple:
    return {k: v.clone() for k, v in model.state_dict().items()}, dict(optimizer.state), model.training


def _assert_same(model: nn.Module, optimizer: torch.optim.Optimizer, before: tuple) -> None:
    state, opt_state, training = before
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert dict(optimizer.state) == opt_state and model.training == training


@pytest.mark.parametrize("mode", ["power", "binsearch", "auto", "throughput"])
def test_find_batch_size_trains_and_restores(mode: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    model, optimizer, data = _setup(oom_from=50)
    model.eval()
    before = _snapshot(model, optimizer)
    # The model's out-of-memory errors are faked (no memory held): the real clean-up (gc) is skipped.
    result = find_batch_size(
        model, optimizer, nn.CrossEntropyLoss(), data, mode=mode, progress_bar=False, clean_up=no_clean_up
    )
    _assert_same(model, optimizer, before)
    assert result.batch_size < 50 and result.chosen_trial.fits
    assert all(t.batch_size <= 200 for t in result.trials)
    assert os.listdir(tmp_path) == []


def test_find_batch_size_oom_at_one_restores_and_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    model, optimizer, data = _setup(oom_from=1)
    before = _snapshot(model, optimizer)
    with pytest.raises(BatchSizeNotFoundError, match="Even batch size 1"):
        find_batch_size(model, optimizer, nn.CrossEntropyLoss(), data, progress_bar=False, clean_up=no_clean_up)
    _assert_same(model, optimizer, before)
    assert os.listdir(tmp_path) == []


def test_find_batch_size_caps_at_dataset_length() -> None:
    model, optimizer, _ = _setup(oom_from=10**6)
    data = torch.utils.data.TensorDataset(torch.randn(24, 4), torch.randint(0, 3, (24,)))
    result = find_batch_size(model, optimizer, nn.CrossEntropyLoss(), data, mode="power", progress_bar=False)
    assert result.batch_size == 24 and max(t.batch_size for t in result.trials) == 24


def test_result_serialises_and_plots() -> None:
    result = search(FakeDevice(oom_from=40), mode="binsearch")
    data = json.loads(result.to_json())
    assert data["batch_size"] == result.batch_size and len(data["trials"]) == result.num_trials
    assert BatchSizeResult.from_dict(data) == result
    fig = result.plot()
    assert fig.axes and "binsearch" in fig.axes[0].get_title()


def test_address_space_limit_pins_the_mmap_threshold_and_budget_is_reread(monkeypatch) -> None:
    import traenslenzor.tuner.batch.runner as finder

    pinned, budgets = [], iter(range(10 * 2**30, 20 * 2**30, 2**30))
    monkeypatch.setattr(finder, "address_space_limited", lambda: True)
    monkeypatch.setattr(finder, "pin_mmap_threshold", lambda: pinned.append(True) or True)
    monkeypatch.setattr(finder, "resolve_budget", lambda max_memory, device: next(budgets))
    result = search(FakeDevice(oom_from=5), mode="power")
    assert pinned == [True]
    # read at the start, then before every proposal after the first: trials 2, 4 fit, 8 fails, then done
    assert result.budget == 13 * 2**30


def test_address_space_limit_warns_while_onednn_caches_primitives(monkeypatch, caplog) -> None:
    import traenslenzor.tuner.batch.runner as finder

    monkeypatch.setattr(finder, "address_space_limited", lambda: True)
    monkeypatch.setattr(finder, "pin_mmap_threshold", lambda: True)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    for name in finder.ONEDNN_CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level(logging.WARNING, logger=finder.__name__):
        search(FakeDevice(oom_from=5), mode="power")
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY=0" in caplog.text
    caplog.clear()
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")
    with caplog.at_level(logging.WARNING, logger=finder.__name__):
        search(FakeDevice(oom_from=5), mode="power")
    assert "primitive cache" not in caplog.text


def test_find_batch_size_rejects_a_misspelt_setting_before_touching_the_model() -> None:
    model = nn.Linear(4, 2)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    with pytest.raises(TypeError, match="max_trial"):
        find_batch_size(model, optimizer, nn.CrossEntropyLoss(), data, max_trial=3)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not optimizer.state


class CachingAllocator:
    """A CUDA caching allocator in miniature: peak *reserved* memory as ``PeakMemoryMeter`` reads it on CUDA.

    A trial at size b needs ``base + per_sample*b`` bytes. Blocks cached by a trial at another size are not reused
    (the real allocator cannot serve a larger tensor from a smaller block), so they stay reserved on top of the
    new ones until ``torch.cuda.empty_cache()`` hands them back.
    """

    def __init__(self, base: int, per_sample: int, oom_above: int):
        self.base, self.per_sample, self.oom_above = base, per_sample, oom_above
        self.cached = 0  # bytes held in blocks cut for the previous trial's size
        self.cached_size: int | None = None
        self.peak = 0

    def empty_cache(self) -> None:
        self.cached, self.cached_size = 0, None

    def run_trial(self, size: int) -> None:
        need = self.base + self.per_sample * size
        reserved = need if size == self.cached_size else self.cached + need
        if reserved > self.oom_above:
            self.empty_cache()  # the allocator frees its cache and retries once before raising
            reserved = need
        if need > self.oom_above:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {size} MiB.")
        self.peak = reserved
        self.cached, self.cached_size = need, size

    # the meter interface
    def start(self) -> None:
        self.peak = 0

    def stop(self) -> int:
        return self.peak


@pytest.mark.parametrize("mode", ["auto", "binsearch"])
def test_cuda_trials_do_not_measure_blocks_cached_by_earlier_trials(mode: str, monkeypatch) -> None:
    """Each CUDA trial starts from an empty cache, so its peak is its own: every fitting trial's measured peak is
    its own need, and the search lands within 2 % of the budget's limit (4094 here)."""
    gpu = CachingAllocator(base=512 * MIB, per_sample=2 * MIB, oom_above=64 * 1024 * MIB)
    monkeypatch.setattr(torch.cuda, "empty_cache", gpu.empty_cache)
    budget = 8 * 1024 * MIB
    result = search_batch_size(
        gpu.run_trial, mode=mode, device="cuda", max_memory=budget, meter=gpu, progress_bar=False, init_val=8
    )
    limit = (budget - gpu.base) // gpu.per_sample
    for trial in result.trials:
        if trial.peak_memory is not None:
            assert trial.peak_memory == gpu.base + gpu.per_sample * trial.batch_size
    assert 0.96 * limit <= result.batch_size <= limit, result.trials


# -- one settings object per search, hooks, serialisation (issue 14) -----------------------------------------------


def test_batch_size_mode_names_exactly_the_registered_policies() -> None:
    assert set(typing.get_args(BatchSizeMode)) == set(SEARCH_POLICIES)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "powr"}, "Unknown batch-size search mode 'powr'; choose one of"),
        ({"init_val": 0}, "init_val must be an integer >= 1"),
        ({"max_trials": 0}, "max_trials must be an integer >= 1"),
        ({"steps_per_trial": True}, "steps_per_trial must be an integer >= 1"),
        ({"init_val": 64, "max_val": 8}, "max_val must be an integer >= init_val=64"),
        ({"margin": 1.0}, r"margin must lie in \[0, 1\)"),
        ({"max_memory": -1}, "max_memory"),
    ],
)
def test_settings_are_validated_when_built(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BatchSearchSettings(**kwargs)


def test_settings_are_frozen_and_hold_the_core_defaults() -> None:
    settings = BatchSearchSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.margin = 0.5  # type: ignore[misc]
    signature = inspect.signature(search_batch_size).parameters
    for field in dataclasses.fields(BatchSearchSettings):
        assert signature[field.name].default == getattr(settings, field.name), field.name


def test_clean_up_runs_after_each_out_of_memory_trial_and_at_the_end() -> None:
    calls = []
    result = search(FakeDevice(oom_from=13), mode="binsearch", clean_up=lambda: calls.append(len(calls)))
    failed = sum(not t.fits for t in result.trials)
    assert failed >= 2 and len(calls) == failed + 1
    assert inspect.signature(search_batch_size).parameters["clean_up"].default is free_memory


def test_find_batch_size_passes_one_settings_object_to_the_runner(monkeypatch) -> None:
    import traenslenzor.tuner.batch.finder as finder

    seen = []
    real = finder.run_search
    monkeypatch.setattr(
        finder, "run_search", lambda run_trial, settings, **kw: seen.append(settings) or real(run_trial, settings, **kw)
    )
    model, optimizer, data = _setup(oom_from=20)
    find_batch_size(
        model,
        optimizer,
        nn.CrossEntropyLoss(),
        data,
        mode="power",
        init_val=4,
        max_val=16,
        margin=0.1,
        progress_bar=False,
        clean_up=no_clean_up,
    )
    assert seen == [BatchSearchSettings("power", 4, 25, 16, 0.1, 3, None)]


def test_find_batch_size_hooks_mirror_find_lr() -> None:
    # A dict batch split_batch cannot read (key "features"), moved by a to_device of the user's, under amp (CPU:
    # bfloat16 autocast); the loss comes from step_fn.
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [{"features": torch.randn(4), "answer": torch.tensor(i % 2)} for i in range(16)]
    moved, dtypes = [], []

    def to_device(batch, device):
        moved.append(len(batch["features"]))
        return {k: v.to(device) for k, v in batch.items()}

    def step_fn(net, batch):
        out = net(batch["features"])
        dtypes.append(out.dtype)
        return nn.functional.cross_entropy(out.float(), batch["answer"])

    result = find_batch_size(
        model,
        optimizer,
        None,
        data,
        mode="power",
        step_fn=step_fn,
        to_device=to_device,
        amp=True,
        progress_bar=False,
        clean_up=no_clean_up,
    )
    assert result.batch_size == 16
    assert moved == [2, 2, 2, 4, 4, 4, 8, 8, 8, 16, 16, 16]
    assert set(dtypes) == {torch.bfloat16}


def test_find_batch_size_without_loss_or_step_fn_is_refused() -> None:
    model, optimizer, data = _setup(oom_from=20)
    with pytest.raises(ValueError, match="Pass loss_fn"):
        find_batch_size(model, optimizer, None, data, progress_bar=False)


def test_to_json_returns_the_text_and_writes_it_when_given_a_path(tmp_path) -> None:
    result = search(FakeDevice(oom_from=40), mode="binsearch")
    text = result.to_json()
    assert json.loads(text)["batch_size"] == result.batch_size
    path = tmp_path / "batch.json"
    assert result.to_json(path) == text
    assert path.read_text(encoding="utf-8") == text + "\n"
    assert BatchSizeResult.from_json(path) == result
