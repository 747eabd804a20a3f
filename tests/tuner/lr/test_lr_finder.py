"""find_lr on tiny CPU models: exact restore, stop rules, LR ratios, accumulation, loader cycling, bad input."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from traenslenzor.tuner.lr.adaptive import AdaptiveRange
from traenslenzor.tuner.lr.finder import find_lr
from traenslenzor.tuner.lr.schedule import lr_schedule
from traenslenzor.tuner.lr.wall import PROBE_BATCHES, probe_due


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))


def _loader(n: int = 64, batch_size: int = 8, **kwargs) -> DataLoader:
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))
    return DataLoader(data, batch_size=batch_size, **kwargs)


@pytest.fixture
def trained():
    """A model and Adam with real state (moments, step count, grads) and a mixed train/eval mode."""
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in list(_loader())[:2]:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    model[0].train()  # a submodule in a different mode than its parent
    return model, optimizer


def _fingerprint(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    state = optimizer.state_dict()
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict().items()},  # incl. BN stats, num_batches_tracked
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "opt_state": {
            k: {n: v.clone() if torch.is_tensor(v) else v for n, v in s.items()} for k, s in state["state"].items()
        },
        "opt_groups": state["param_groups"],
        "modes": [m.training for m in model.modules()],
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
    }


def _assert_identical(a: dict, b: dict) -> None:
    assert a["tensors"].keys() == b["tensors"].keys()
    for k in a["tensors"]:
        assert torch.equal(a["tensors"][k], b["tensors"][k]), k
    for x, y in zip(a["grads"], b["grads"], strict=True):
        assert (x is None and y is None) or torch.equal(x, y)
    assert a["opt_state"].keys() == b["opt_state"].keys()
    for k, s in a["opt_state"].items():
        for n, v in s.items():
            assert torch.equal(v, b["opt_state"][k][n]) if torch.is_tensor(v) else v == b["opt_state"][k][n]
    assert a["opt_groups"] == b["opt_groups"] and a["modes"] == b["modes"]
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert all(np.array_equal(x, y) for x, y in zip(a["numpy_rng"], b["numpy_rng"], strict=True))
    assert a["python_rng"] == b["python_rng"]


def _ce(outputs, targets):
    return nn.functional.cross_entropy(outputs, targets)


class _Raising:
    """A loss that raises ``error`` on call ``at`` (0-based) and counts its calls."""

    def __init__(self, error: BaseException | None = None, at: int = 5) -> None:
        self.error, self.at, self.calls = error, at, 0

    def __call__(self, outputs, targets):
        if self.calls == self.at and self.error is not None:
            raise self.error
        self.calls += 1
        return _ce(outputs, targets)


def test_restores_exactly_after_success(trained) -> None:
    model, optimizer = trained
    before = _fingerprint(model, optimizer)
    result = find_lr(model, optimizer, _ce, _loader(), min_lr=1e-5, max_lr=1.0, num_training=12, progress_bar=False)
    assert len(result.lrs) >= 2 and result.lrs[0] == 1e-5
    _assert_identical(before, _fingerprint(model, optimizer))


@pytest.mark.parametrize("error", [RuntimeError("boom at step 5"), KeyboardInterrupt()])
def test_restores_exactly_after_exception_mid_search(trained, error) -> None:
    model, optimizer = trained
    before = _fingerprint(model, optimizer)
    loss = _Raising(error, at=5)
    with pytest.raises(type(error)):
        find_lr(model, optimizer, loss, _loader(), num_training=20, early_stop_threshold=None, progress_bar=False)
    assert loss.calls == 5  # five steps trained, the sixth raised
    _assert_identical(before, _fingerprint(model, optimizer))


def test_nan_loss_stops_at_once_and_restores(trained) -> None:
    model, optimizer = trained
    before = _fingerprint(model, optimizer)
    calls = []

    def loss_fn(outputs, targets):
        calls.append(1)
        loss = _ce(outputs, targets)
        return loss * math.nan if len(calls) == 4 else loss

    result = find_lr(
        model, optimizer, loss_fn, _loader(), num_training=20, progress_bar=False, adaptive_range=None, probe_batches=0
    )  # calls counted: training steps only (the probe's passes are tested on their own)
    assert result.stop_reason == "non_finite_loss" and len(result.lrs) == 4 and len(calls) == 4
    assert math.isnan(result.raw_losses[-1]) and all(math.isfinite(v) for v in result.raw_losses[:3])
    _assert_identical(before, _fingerprint(model, optimizer))


def test_diverges_on_linear_regression_with_sgd() -> None:
    # y = 2x: SGD on MSE blows up above lr ~ 2 / E[x^2] = 2, so a sweep to 100 must stop by divergence.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 1, generator=g)
    loader = DataLoader(TensorDataset(x, 2 * x), batch_size=32)
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = find_lr(
        model, optimizer, nn.MSELoss(), loader, min_lr=1e-4, max_lr=100.0, num_training=60, progress_bar=False
    )
    assert result.stop_reason == "diverged"
    assert 0.5 < result.lrs[-1] < 100.0
    assert min(result.losses) < result.losses[0]
    # The curve fell and blew up: a usable suggestion inside the swept range, below the blow-up.
    suggested = result.suggestion()
    assert suggested is not None and 1e-4 < suggested < result.lrs[-1]


class _SpySGD(torch.optim.SGD):
    """SGD that records, at each step, every group's LR and the first parameter's gradient."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen_lrs: list[list[float]] = []
        self.seen_grads: list[torch.Tensor] = []

    def step(self, closure=None):
        self.seen_lrs.append([g["lr"] for g in self.param_groups])
        self.seen_grads.append(self.param_groups[0]["params"][0].grad.clone())
        return super().step(closure)


def test_param_group_ratios_preserved_during_sweep() -> None:
    model = _model()
    optimizer = _SpySGD(
        [
            {"params": model[0].parameters(), "lr": 1e-2},
            {"params": model[4].parameters(), "lr": 1e-3},
            {"params": model[1].parameters(), "lr": 5e-2},
        ]
    )
    find_lr(
        model,
        optimizer,
        _ce,
        _loader(),
        min_lr=1e-6,
        max_lr=1e-1,
        num_training=8,
        early_stop_threshold=None,
        progress_bar=False,
    )
    schedule = lr_schedule(1e-6, 1e-1, 8, "exponential")
    assert len(optimizer.seen_lrs) == 8
    for lr, seen in zip(schedule, optimizer.seen_lrs, strict=True):
        assert seen == pytest.approx([lr, lr * 0.1, lr * 5.0], rel=1e-12)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 1e-3, 5e-2]  # restored


def test_accumulation_steps_micro_batches_mean_loss_and_scaled_grads() -> None:
    # loss_i = w * x_i with w = 1: grad of the accumulated step is mean(x_i); the point is mean(loss_i).
    xs = torch.arange(1.0, 13.0).reshape(12, 1, 1)
    loader = [(x, torch.zeros(1)) for x in xs]  # a list is re-iterable
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    optimizer = _SpySGD(model.parameters(), lr=1e-3)
    calls = []

    def loss_fn(outputs, targets):
        calls.append(1)
        return outputs.sum()

    result = find_lr(
        model,
        optimizer,
        loss_fn,
        loader,
        min_lr=1e-9,
        max_lr=1e-8,
        num_training=4,
        beta=0.0,
        early_stop_threshold=None,
        accumulate_grad_batches=3,
        progress_bar=False,
        probe_batches=0,  # the x values below are the loader's, in order
    )
    assert len(optimizer.seen_lrs) == 4 and len(calls) == 12
    # tiny LRs barely move w, so each point is ~ the mean of its three x values: 2, 5, 8, 11
    assert result.raw_losses == pytest.approx([2.0, 5.0, 8.0, 11.0], rel=1e-6)
    assert [float(g) for g in optimizer.seen_grads] == pytest.approx([2.0, 5.0, 8.0, 11.0], rel=1e-12)
    assert result.metadata["accumulate_grad_batches"] == 3


def test_loader_shorter_than_search_is_cycled() -> None:
    loader = _loader(n=24, batch_size=8)  # 3 batches per epoch
    calls = []

    def loss_fn(outputs, targets):
        calls.append(len(targets))
        return _ce(outputs, targets)

    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = find_lr(
        model,
        optimizer,
        loss_fn,
        loader,
        min_lr=1e-6,
        max_lr=1e-3,
        num_training=10,
        early_stop_threshold=None,
        progress_bar=False,
        probe_batches=0,  # calls counted: training steps only
    )
    assert result.stop_reason == "completed" and len(result.lrs) == 10 and len(calls) == 10
    assert result.lrs[-1] == 1e-3


def test_one_shot_iterator_that_runs_out_is_a_clear_error() -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    one_shot = iter(list(_loader(n=16)))
    before = _fingerprint(model, optimizer)
    with pytest.raises(ValueError, match="re-iterable"):
        find_lr(model, optimizer, _ce, one_shot, num_training=5, early_stop_threshold=None, progress_bar=False)
    _assert_identical(before, _fingerprint(model, optimizer))


def test_shuffling_loader_generator_restored() -> None:
    generator = torch.Generator().manual_seed(3)
    loader = _loader(shuffle=True, generator=generator)
    state = generator.get_state()
    model = _model()
    find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _ce, loader, num_training=3, progress_bar=False)
    assert torch.equal(generator.get_state(), state)


def test_step_fn_to_device_dict_batches_amp_and_progress_bar() -> None:
    batches = [{"features": torch.randn(8, 4), "label": torch.randint(0, 3, (8,))} for _ in range(3)]
    moved = []

    def to_device(batch, device):
        moved.append(device)
        return {k: v.to(device) for k, v in batch.items()}

    def step_fn(model, batch):
        return _ce(model(batch["features"]), batch["label"])

    model = _model()
    result = find_lr(
        model,
        torch.optim.AdamW(model.parameters()),
        None,
        batches,
        num_training=4,
        step_fn=step_fn,
        to_device=to_device,
        device="cpu",
        amp=True,
        early_stop_threshold=None,
    )
    # every step moves its training batch; the set-aside batches, joined into one dict batch, move once
    assert len(result.lrs) == 4 and moved == [torch.device("cpu")] * (4 + 1)
    assert result.metadata["amp"] is True and result.metadata["optimizer"] == "AdamW"


def test_non_scalar_loss_is_a_clear_error() -> None:
    model = _model()
    with pytest.raises(ValueError, match="scalar"):
        find_lr(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            nn.CrossEntropyLoss(reduction="none"),
            _loader(),
            num_training=3,
            progress_bar=False,
        )


class _CountingLoader:
    """An iterable loader that counts how many batches were taken from it."""

    def __init__(self, batches) -> None:
        self.batches, self.taken = list(batches), 0

    def __iter__(self):
        for batch in self.batches:
            self.taken += 1
            yield batch


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_lr": 1e-2, "max_lr": 1e-2}, "smaller than max_lr"),
        ({"min_lr": 1.0, "max_lr": 1e-3}, "smaller than max_lr"),
        ({"min_lr": 0.0}, "positive"),
        ({"max_lr": -1.0}, "positive"),
        ({"num_training": 1}, "at least 2"),
        ({"mode": "cosine"}, "mode"),
        ({"accumulate_grad_batches": 0}, "accumulate_grad_batches"),
        ({"early_stop_threshold": 0.5}, "early_stop_threshold"),
        ({"beta": 1.0}, "beta"),
        ({"empty": True}, "empty"),
        ({"empty_iterable": True}, "no batches"),
        ({"no_loss": True}, "loss_fn"),
    ],
)
def test_bad_input_raises_before_any_training_step(kwargs, match) -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    forwards = []
    model.register_forward_hook(lambda *args: forwards.append(1))
    loader = _CountingLoader(_loader())  # built before the fingerprint: iterating a DataLoader draws a seed
    if kwargs.pop("empty", False):
        loader = _loader(n=4, batch_size=8, drop_last=True)
    if kwargs.pop("empty_iterable", False):
        loader = _CountingLoader([])
    loss_fn = None if kwargs.pop("no_loss", False) else _ce
    before = _fingerprint(model, optimizer)
    with pytest.raises(ValueError, match=match):
        find_lr(model, optimizer, loss_fn, loader, progress_bar=False, **kwargs)
    assert forwards == [] and getattr(loader, "taken", 0) == 0
    _assert_identical(before, _fingerprint(model, optimizer))


@pytest.mark.gpu
def test_cuda_amp_with_grad_scaler_restores_exactly() -> None:
    model = _model().cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = _loader()  # CPU batches: find_lr moves them to the model's device
    before = _fingerprint(model, optimizer)
    cuda_rng = torch.cuda.get_rng_state_all()
    result = find_lr(model, optimizer, _ce, loader, num_training=10, amp=True, progress_bar=False)
    assert len(result.lrs) >= 2 and result.metadata["device"].startswith("cuda") and result.metadata["amp"] is True
    _assert_identical(before, _fingerprint(model, optimizer))
    assert all(torch.equal(a, b) for a, b in zip(cuda_rng, torch.cuda.get_rng_state_all(), strict=True))


def _linreg() -> tuple[nn.Module, torch.optim.Optimizer, DataLoader]:
    # y = 2x with E[x^2] = 1: SGD on MSE learns for lr < ~1 and blows up above lr ~ 2.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 1, generator=g)
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    y = 2 * x + 0.3 * torch.randn(256, 1, generator=g)  # noise: a loss floor of ~0.09 the EMA can settle on
    return model, torch.optim.SGD(model.parameters(), lr=0.1), DataLoader(TensorDataset(x, y), batch_size=32)


def test_sweep_continues_past_max_lr_when_the_loss_never_turned_up() -> None:
    model, optimizer, loader = _linreg()
    before = _fingerprint(model, optimizer)
    # the adaptive range reads the training loss; no probe, so the 8-batch loader trains on all its batches
    kwargs = {"min_lr": 1e-4, "max_lr": 0.05, "num_training": 40, "progress_bar": False, "probe_batches": 0}
    fixed = find_lr(model, optimizer, nn.MSELoss(), loader, adaptive_range=None, **kwargs)
    assert fixed.stop_reason == "completed" and "never_diverged" in [f.code for f in fixed.diagnostics()]
    result = find_lr(model, optimizer, nn.MSELoss(), loader, **kwargs)
    (event,) = result.metadata["adaptive_range"]
    assert event["action"] == "extend" and "never turned up" in event["reason"]
    assert 2.0 < result.lrs[-1] <= event["cap"] <= 0.05 * 100 and len(result.lrs) > 40
    assert result.stop_reason == "diverged"  # past lr ~2 SGD blows up: the extension found the edge
    assert result.lrs[:40] == fixed.lrs and result.raw_losses[:40] == fixed.raw_losses  # continued, not restarted
    ratio = result.lrs[1] / result.lrs[0]
    assert result.lrs[41] / result.lrs[40] == pytest.approx(ratio) and result.lrs[40] == pytest.approx(0.05 * ratio)
    assert result.metadata["total_steps"] == len(result.lrs) <= 3 * 40
    assert "never_diverged" not in [f.code for f in result.diagnostics()]
    _assert_identical(before, _fingerprint(model, optimizer))


def test_sweep_restarts_below_min_lr_when_the_loss_blew_up_at_once(caplog) -> None:
    model, optimizer, loader = _linreg()
    before = _fingerprint(model, optimizer)
    kwargs = {"min_lr": 3.0, "max_lr": 1000.0, "num_training": 40, "progress_bar": False}
    fixed = find_lr(model, optimizer, nn.MSELoss(), loader, adaptive_range=None, **kwargs)
    assert "diverged_early" in [f.code for f in fixed.diagnostics()]
    with caplog.at_level("WARNING", logger="traenslenzor.tuner.lr.finder"):
        result = find_lr(model, optimizer, nn.MSELoss(), loader, **kwargs)
    (event,) = result.metadata["adaptive_range"]
    assert event["action"] == "restart" and event["steps"] == len(fixed.lrs) and "restarted" in caplog.text
    assert result.min_lr == pytest.approx(3e-3) and result.lrs[0] == pytest.approx(3e-3)
    assert result.metadata["requested_range"] == [3.0, 1000.0]
    assert result.stop_reason == "diverged" and len(result.lrs) > 10 and min(result.losses) < result.losses[0]
    assert result.metadata["total_steps"] == len(fixed.lrs) + len(result.lrs) <= 3 * 40
    assert 1e-2 < result.suggestion() < 2.0
    _assert_identical(before, _fingerprint(model, optimizer))


def test_the_adaptive_total_stays_within_three_sweeps_on_a_narrow_range() -> None:
    # 1e-5..3e-5 in 40 steps: 2 decades more would be 163 steps; the cap stops the extension at 3 x 40 in all.
    model, optimizer, loader = _linreg()
    full_batch = DataLoader(loader.dataset, batch_size=256)  # one batch: the loss falls smoothly, never turns up
    kwargs = {"min_lr": 1e-5, "max_lr": 3e-5, "num_training": 40, "progress_bar": False}
    result = find_lr(model, optimizer, nn.MSELoss(), full_batch, **kwargs)
    (event,) = result.metadata["adaptive_range"]
    assert event["action"] == "extend" and result.stop_reason == "completed"
    assert result.metadata["total_steps"] == len(result.lrs) == result.num_training == 3 * 40
    assert result.max_lr == result.lrs[-1] == event["cap"] and result.metadata["requested_range"] == [1e-5, 3e-5]


def test_adaptive_range_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="extend_decades"):
        AdaptiveRange(extend_decades=-1)
    model, optimizer, loader = _linreg()
    with pytest.raises(TypeError, match="AdaptiveRange"):
        find_lr(model, optimizer, nn.MSELoss(), loader, adaptive_range={"extend_decades": 1})  # type: ignore[arg-type]


def test_probe_measures_the_same_set_aside_batches_joined_after_every_second_step_and_restores(trained) -> None:
    model, optimizer = trained
    loader = _loader(n=160, batch_size=8)
    set_aside = [float(x[0, 0]) for x, _ in loader][:PROBE_BATCHES]  # the loader's first batches
    before = _fingerprint(model, optimizer)
    calls: list[tuple[bool, int, list[float]]] = []  # per forward: (grad enabled, rows, first input of each batch)
    hook = model.register_forward_pre_hook(
        lambda _, args: calls.append((torch.is_grad_enabled(), len(args[0]), [float(v) for v in args[0][::8, 0]]))
    )
    kwargs = {"num_training": 6, "early_stop_threshold": None, "progress_bar": False, "adaptive_range": None}
    result = find_lr(model, optimizer, _ce, loader, **kwargs)
    hook.remove()
    # per step: one training forward (with grad); after every 2nd, one forward (no grad) on the set-aside batches
    # joined into one batch, always the same
    due = [probe_due(i) for i in range(6)]
    assert [grad for grad, _, _ in calls] == [g for d in due for g in ([True, False] if d else [True])]
    probes = [call for call in calls if not call[0]]
    assert len(probes) == 3 and all(rows == 8 * PROBE_BATCHES for _, rows, _ in probes)
    assert all(firsts == pytest.approx(set_aside) for _, _, firsts in probes)
    assert calls[0][2][0] not in set_aside  # training starts after them
    assert len(result.probe_losses) == 6
    assert [math.isfinite(v) for v in result.probe_losses] == due
    assert result.results["probe_loss"] == pytest.approx(list(result.probe_losses), nan_ok=True)
    assert result.metadata["probe_forward_passes"] == 3 * PROBE_BATCHES
    _assert_identical(before, _fingerprint(model, optimizer))


def test_a_probe_loader_gives_the_probe_its_batches_and_every_training_batch_trains(trained) -> None:
    model, optimizer = trained
    loader = _loader(n=160, batch_size=8)
    g = torch.Generator().manual_seed(2)  # other samples than _loader's
    held = TensorDataset(torch.randn(48, 4, generator=g), torch.randint(0, 3, (48,), generator=g))
    held_out = DataLoader(held, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(3))
    order = held_out.generator.get_state()
    first_inputs = [float(x[0, 0]) for x, _ in loader]
    before = _fingerprint(model, optimizer)
    calls: list[tuple[bool, list[float]]] = []  # per forward: (grad enabled, first input of each 8-row batch)
    hook = model.register_forward_pre_hook(
        lambda _, args: calls.append((torch.is_grad_enabled(), [float(v) for v in args[0][::8, 0]]))
    )
    kwargs = {"num_training": 6, "early_stop_threshold": None, "progress_bar": False, "adaptive_range": None}
    result = find_lr(model, optimizer, _ce, loader, probe_loader=held_out, **kwargs)
    hook.remove()
    training = [firsts[0] for grad, firsts in calls if grad]
    probes = [firsts for grad, firsts in calls if not grad]
    assert training == pytest.approx(first_inputs[:6])  # nothing set aside: training starts at the first batch
    assert len(probes) == 3 and all(len(firsts) == PROBE_BATCHES for firsts in probes)
    assert all(firsts == pytest.approx(probes[0]) for firsts in probes)  # the same held-out batches each time
    assert not set(probes[0]) & set(first_inputs)  # ... and none of them a training batch
    assert result.metadata["probe_source"] == "probe_loader"
    assert torch.equal(held_out.generator.get_state(), order)  # its shuffle order put back
    _assert_identical(before, _fingerprint(model, optimizer))


def test_a_held_out_probe_shows_what_training_does_to_unseen_data() -> None:
    # trained on labels that are a function of x, probed on the same inputs with other labels: the training-batch
    # probe falls, the held-out one climbs -- the curve the wall reading then reads is the held-out loss
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    train = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=32)
    flipped = DataLoader(TensorDataset(x, (x[:, 0] <= 0).long()), batch_size=32)
    kwargs = {"min_lr": 1e-3, "max_lr": 1.0, "num_training": 40, "early_stop_threshold": None, "progress_bar": False}

    def probe_curve(**extra) -> list[float]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        result = find_lr(model, torch.optim.SGD(model.parameters(), lr=1e-3), _ce, train, adaptive_range=None,
                         **kwargs, **extra)  # fmt: skip
        return [v for v in result.probe_losses if math.isfinite(v)]

    own, held_out = probe_curve(), probe_curve(probe_loader=flipped)
    assert own[-1] < 0.6 * own[0]  # 0.675 -> 0.292 when written
    assert held_out[-1] > 1.5 * held_out[0]  # 0.784 -> 1.883


def test_a_probe_loader_needs_probe_batches_and_a_batch_before_any_training_step(trained) -> None:
    model, optimizer = trained
    before = _fingerprint(model, optimizer)
    with pytest.raises(ValueError, match="probe_batches=0"):
        find_lr(model, optimizer, _ce, _loader(), probe_loader=_loader(), probe_batches=0, progress_bar=False)
    with pytest.raises(ValueError, match="probe_loader yielded no batch"):
        find_lr(model, optimizer, _ce, _loader(), probe_loader=[], progress_bar=False)
    with pytest.raises(TypeError, match="probe_loader must be iterable"):
        find_lr(model, optimizer, _ce, _loader(), probe_loader=3, progress_bar=False)  # type: ignore[arg-type]
    _assert_identical(before, _fingerprint(model, optimizer))


def test_probe_batches_must_be_a_non_negative_integer() -> None:
    model = _model()
    with pytest.raises(ValueError, match="probe_batches"):
        find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _ce, _loader(), probe_batches=-1)


def test_a_joined_probe_that_runs_out_of_memory_is_measured_batch_by_batch() -> None:
    # right after a batch-size search the joined probe (4 batches in one pass) may not fit where one batch does
    class FitsEight(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = _model()
            self.rows: list[int] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.rows.append(len(x))
            if len(x) > 8:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (faked)")
            return self.inner(x)

    model = FitsEight()
    kwargs = {"num_training": 6, "early_stop_threshold": None, "progress_bar": False, "adaptive_range": None}
    result = find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _ce, _loader(n=160, batch_size=8), **kwargs)
    assert [math.isfinite(v) for v in result.probe_losses] == [probe_due(i) for i in range(6)]
    # the joined pass was tried once; every probe after it ran the 4 batches apart
    assert model.rows.count(8 * PROBE_BATCHES) == 1 and model.rows.count(8) == 6 + 3 * PROBE_BATCHES
