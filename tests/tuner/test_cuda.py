"""On a CUDA device only (skipped elsewhere): real out-of-memory errors under a per-process memory cap, exact
restore of model, optimizer and CUDA RNG, and no device memory left behind by a failed trial."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.helpers.lightning_models import trainer
from traenslenzor.tuner.batch.finder import find_batch_size
from traenslenzor.tuner.lightning import Tuner
from traenslenzor.tuner.lr.finder import find_lr

pytestmark = pytest.mark.gpu

GIB = 2**30
CAP_GIB = 1.0  # the conv net below needs ~3-4 MiB per 64 px sample: the cap binds at a few hundred samples
N = 2048


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def _images() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(N, 3, 64, 64, generator=g), torch.randint(0, 10, (N,), generator=g))


@contextmanager
def _memory_cap(gib: float) -> Iterator[None]:
    """The caching allocator raises a real ``torch.OutOfMemoryError`` above ``gib`` GiB, for this test only."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(gib * GIB / total)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    tensors = [t.detach().clone() for t in model.state_dict().values()]
    for state in optimizer.state_dict()["state"].values():
        tensors += [v.clone() for v in state.values() if torch.is_tensor(v)]
    return [*tensors, *torch.cuda.get_rng_state_all(), torch.get_rng_state()]


def _assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def _trained_on_cuda() -> tuple[nn.Module, torch.optim.Optimizer]:
    """A net and AdamW after one real step: moments to restore, cuBLAS/cuDNN workspaces already allocated."""
    model = _net().cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = _images()[:16]
    nn.functional.cross_entropy(model(x.cuda()), y.cuda()).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model, optimizer


@pytest.mark.parametrize("mode", ["power", "binsearch", "auto"])
def test_batch_search_under_a_real_cuda_memory_cap(mode: str) -> None:
    model, optimizer = _trained_on_cuda()
    data = _images()
    with _memory_cap(CAP_GIB):
        before, allocated = _snapshot(model, optimizer), torch.cuda.memory_allocated()
        result = find_batch_size(
            model, optimizer, nn.functional.cross_entropy, data, mode=mode, init_val=16, progress_bar=False
        )
        _assert_same(before, _snapshot(model, optimizer))
        # A failed trial's activations (hundreds of MiB here) must not stay referenced by the caught exception.
        assert torch.cuda.memory_allocated() <= allocated + 64 * 2**20
        assert 16 < result.batch_size < N, result.trials  # the cap, not the dataset, ended the search
        assert result.budget is not None and result.budget <= CAP_GIB * GIB  # the cap lowers the default budget
        if mode != "auto":
            assert any(not t.fits and "out of memory" in (t.error or "") for t in result.trials), result.trials
        # The chosen size trains under the cap.
        x, y = data[: result.batch_size]
        nn.functional.cross_entropy(model(x.cuda()), y.cuda()).backward()
        optimizer.step()


def test_lr_search_interrupted_on_cuda_restores_model_optimizer_and_cuda_rng() -> None:
    model, optimizer = _trained_on_cuda()
    loader = DataLoader(_images(), batch_size=32)
    before = _snapshot(model, optimizer)
    calls = [0]

    def interrupting_loss(outputs, targets):
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        return nn.functional.cross_entropy(outputs, targets)

    with pytest.raises(KeyboardInterrupt):
        find_lr(model, optimizer, interrupting_loss, loader, num_training=20, amp=True, progress_bar=False)
    _assert_same(before, _snapshot(model, optimizer))


class _ConvModule(pl.LightningModule):
    def __init__(self, batch_size: int = 16) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.lr = 1e-3
        self.net = _net()
        self.data = _images()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size, shuffle=True)


def test_tuner_on_gpu_with_mixed_precision_then_fit(tmp_path) -> None:
    """The guide's flow on a GPU: batch size under a real memory cap, then the LR, then training at both.

    The margin is 0.2, not the Tuner's 0.05: each activation of this net is a sixth of the 1 GiB cap, and on an
    H200 the LR search at the 5 %-cut size (649 of 683) failed in 3 of 4 runs: 930 MiB needed, but 104 MiB of the
    reserved memory lay in pieces too small for the next 164 MiB block. A margin has to exceed one such block.
    """
    model = _ConvModule()
    with _memory_cap(CAP_GIB):
        gpu = trainer(tmp_path, accelerator="gpu", devices=1, precision="16-mixed", limit_train_batches=3)
        weights = [t.clone() for t in model.state_dict().values()]
        tuner = Tuner(gpu)
        size = tuner.scale_batch_size(model, mode="binsearch", init_val=16, margin=0.2, progress_bar=False)
        assert size is not None and 16 < size < N and model.batch_size == size
        result = tuner.lr_find(model, num_training=30, progress_bar=False)
        assert result is not None and result.suggestion() is not None and model.lr == result.suggestion()
        _assert_same(weights, [t.clone().cpu() for t in model.state_dict().values()])
        gpu.fit(model)
        assert gpu.global_step == 3
