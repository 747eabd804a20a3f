"""Two-process DDP check on CPU (gloo) of the Lightning adapter.

Checks, with ``Trainer(accelerator="cpu", devices=2, strategy="ddp")``:

* ``Tuner.lr_find``: every rank records the same curve (losses averaged over ranks) and adopts the same LR, although
  each rank trains on its own shard of the data;
* ``Tuner.scale_batch_size``: each rank measures on its own (here rank 0 fits batches up to 40, rank 1 up to 12,
  faked out-of-memory errors), and all ranks adopt the smallest size found (8 in power mode);
* Lightning's ``Tuner.scale_batch_size`` refuses distributed strategies (recorded for the table);
* a normal ``trainer.fit`` afterwards runs at the tuned values, and no file is left in ``default_root_dir``;
* when one rank fits no batch size at all, every rank raises ``BatchSizeNotFoundError`` (none waits forever in a
  collective) and keeps its batch size.

Run: ``python tests/helpers/ddp_two_ranks.py`` (Lightning's launcher starts rank 1 by re-running this script; about
30 s on 2 cores). Prints a markdown table on rank 0 and writes ``benchmarks/results/ddp_check.json`` (or
``$DDP_CHECK_OUT``); exit status 1 if a check fails. ``tests/tuner/lightning/test_lightning_ddp.py`` runs it
(marked ``ddp``: deselected by default, run on its own with ``python -m pytest -m ddp``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.tuner import Tuner as LightningTuner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from traenslenzor.tuner.lightning import Tuner

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
FITS_UP_TO = {0: 40, 1: 12}  # per rank: larger batches raise a faked CUDA out-of-memory error


class DdpModel(pl.LightningModule):
    def __init__(self, learning_rate: float = 1e-3, batch_size: int = 4):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
        g = torch.Generator().manual_seed(0)
        x = torch.randn(512, 8, generator=g)
        self.data = TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())
        self.fit_batch_sizes: list[int] = []
        self.fits_up_to = dict(FITS_UP_TO)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if len(x) > self.fits_up_to[self.global_rank]:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 MiB (faked)")
        self.fit_batch_sizes.append(len(x))
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate, momentum=0.9)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.hparams.batch_size, shuffle=True)


def _trainer(root: str) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=1,
        limit_train_batches=5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )


def _gather(value):
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def main() -> int:
    try:
        return _check()
    finally:
        # Both ranks leave together and tear the process group down explicitly: a rank that exits while the
        # other still holds the gloo group aborts in C++ ("terminate called without an active exception").
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _check() -> int:
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    root = os.environ.setdefault("DDP_CHECK_ROOT", tempfile.mkdtemp(prefix="ddp_check_"))  # shared by both ranks
    model = DdpModel()
    trainer = _trainer(root)
    result = Tuner(trainer).lr_find(model, num_training=40, max_lr=1.0, progress_bar=False)
    lr_curves = _gather(result.results["loss"])
    lrs = _gather(model.hparams.learning_rate)
    model.fit_batch_sizes.clear()
    size = Tuner(trainer).scale_batch_size(model, max_val=64, progress_bar=False)
    measured = _gather(max(model.fit_batch_sizes))  # the largest size that ran on this rank during the search
    sizes = _gather(model.hparams.batch_size)
    model.fit_batch_sizes.clear()
    lightning_refusal = None
    try:
        LightningTuner(trainer).scale_batch_size(model)
    except Exception as exc:  # Lightning's documented refusal
        lightning_refusal = f"{type(exc).__name__}: {exc}"
    trainer.fit(model)
    fit_sizes = _gather(sorted(set(model.fit_batch_sizes)))
    model.fits_up_to = {0: 40, 1: 0}  # rank 1 cannot fit even batch size 1: every rank must raise, none hang
    try:
        Tuner(trainer).scale_batch_size(model, max_val=64, progress_bar=False)
        failed = None
    except Exception as exc:
        failed = type(exc).__name__
    failures = _gather((failed, model.hparams.batch_size))
    files = _gather(sorted(str(p) for p in Path(root).rglob("*") if p.is_file()))
    if trainer.global_rank != 0:
        return 0
    checks = {
        "lr_find: identical loss curves on both ranks": lr_curves[0] == lr_curves[1],
        "lr_find: same LR adopted on both ranks": lrs[0] == lrs[1] and lrs[0] != 1e-3,
        "scale_batch_size: ranks measure 32 and 8 on their own": measured == [32, 8],
        "scale_batch_size: both ranks adopt min(32, 8) = 8": sizes == [8, 8] and size == 8,
        "fit afterwards runs at batch size 8 on both ranks": fit_sizes == [[8], [8]],
        "no file left in default_root_dir": files == [[], []],
        "no size fits on rank 1: both ranks raise, keep batch size 8": failures == [("BatchSizeNotFoundError", 8)] * 2,
        "Lightning refuses scale_batch_size under DDP": lightning_refusal is not None,
    }
    report = {
        "lr_per_rank": lrs,
        "measured_batch_size_per_rank": measured,
        "batch_size_per_rank": sizes,
        "lightning_scale_batch_size": lightning_refusal,
        "checks": checks,
    }
    out = Path(os.environ.get("DDP_CHECK_OUT", RESULTS / "ddp_check.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("| check (2 ranks, gloo, CPU) | result |\n| --- | --- |")
    for name, ok in checks.items():
        print(f"| {name} | {'pass' if ok else 'FAIL'} |")
    print(f"\nLR per rank: {lrs}; batch size per rank: {sizes}; Lightning: {lightning_refusal}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
