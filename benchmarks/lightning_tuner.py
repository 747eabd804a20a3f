"""Ours vs Lightning's ``Tuner`` through a Lightning ``Trainer``, in the same run: wall time on a >= 10M-parameter
model on CPU, and LR-suggestion quality on the tasks of ``lr_tasks.py`` (scored against ``lr_quality.py``'s grid
oracle).

Part ``cost`` (model: MLP 1024-2048-2048-2048-10, 10.5M parameters, Adam, batch 16, 4096 random samples):

* ``lr_find``: 100 steps from 1e-6 to 1, ``early_stop_threshold=None`` so that both tools run exactly 100 steps;
  beside it, 100 plain training steps through ``trainer.fit(max_steps=100)`` (the floor the search cannot beat).
* ``scale_batch_size``: ``power`` and ``binsearch`` from 2, with a faked memory limit (a batch above
  ``FITS_UP_TO`` raises ``CUDA out of memory`` after its forward pass, the same for both tools).

For each: wall time (median of ``--repeats``, runs interleaved ours/Lightning), training steps run, the result, and
the bytes Lightning writes to its temporary checkpoint (ours writes none).

Part ``quality``: for every task of ``lr_tasks.TASKS`` and finder seed, a LightningModule around the task's model
and loader, ``Tuner(trainer).lr_find(...)`` with ours and with Lightning's, the suggestion scored by training at it
(``lr_quality``'s grid oracle, whose cache ``lr_oracle_cache.json`` is read; new oracle points go to
``lightning_tuner_oracle_cache.json``). Gap = (L(s) - L*) / (L(untrained) - L*), 0 best, 1 useless.

Run: ``python -m benchmarks.lightning_tuner [--part cost|quality|all] [--repeats 2] [--finder-seeds 1]``. Prints
markdown tables; writes ``benchmarks/results/lightning_tuner.json`` (``--out`` another path; a part not run keeps
what that file holds).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.tuner import Tuner as LightningTuner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import RESULTS, cpu_trainer, quiet_loggers
from benchmarks.finders import Sweep, run_tuner
from benchmarks.lr_quality import CACHE_PATH, gap_cell, grid, lit_task, score, untrained
from benchmarks.lr_tasks import TASKS, make_data, make_loader
from benchmarks.oracle import Oracle
from traenslenzor.tuner.lightning import Tuner as OurTuner

OWN_CACHE = RESULTS / "lightning_tuner_oracle_cache.json"
TUNERS = {"ours": OurTuner, "lightning": LightningTuner}
FITS_UP_TO = 48  # faked memory limit of the cost benchmark's batch-size search
log = logging.getLogger("lightning_tuner")


# -- cost -------------------------------------------------------------------------------------------------------


class BigMLP(pl.LightningModule):
    """MLP d_in-width-width-width-10 (10.5M parameters by default); LR and batch size in hparams; counts steps."""

    def __init__(self, learning_rate: float = 1e-3, batch_size: int = 16, d_in: int = 1024, width: int = 2048):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10),
        )  # fmt: skip
        g = torch.Generator().manual_seed(1)
        x = torch.randn(4096, d_in, generator=g)
        self.data = TensorDataset(x, torch.randint(0, 10, (4096,), generator=g))
        self.steps = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.steps += 1
        loss = nn.functional.cross_entropy(self.net(x), y)
        if len(x) > FITS_UP_TO:
            raise RuntimeError("CUDA out of memory. Tried to allocate 64.00 MiB (faked limit)")
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.hparams.batch_size, shuffle=True)


def _checkpoint_bytes(trainer: pl.Trainer) -> list[int]:
    """Wraps ``trainer.save_checkpoint`` to record the size of every checkpoint file written."""
    sizes: list[int] = []
    save = trainer.save_checkpoint

    def recording(path, *args, **kwargs):
        save(path, *args, **kwargs)
        sizes.append(os.path.getsize(path))

    trainer.save_checkpoint = recording
    return sizes


# The 10.5M-parameter model, and a tiny one on which the harness's own per-step overhead is what is measured.
MODELS = {"10.5M MLP": {}, "tiny MLP (5k)": {"d_in": 32, "width": 48}}


def _run_cost(tool: str, job: str, model_name: str) -> dict:
    model = BigMLP(**MODELS[model_name])
    quiet = {"progress_bar": False} if tool == "ours" else {}
    with tempfile.TemporaryDirectory() as root:
        trainer = cpu_trainer(root, max_steps=100) if tool == "plain" else cpu_trainer(root)
        written = _checkpoint_bytes(trainer)
        start = time.perf_counter()
        if tool == "plain":
            trainer.fit(model)
            outcome = None
        elif job == "lr_find":
            result = TUNERS[tool](trainer).lr_find(model, min_lr=1e-6, early_stop_threshold=None, **quiet)
            outcome = result.suggestion()
        else:
            outcome = TUNERS[tool](trainer).scale_batch_size(model, mode=job, **quiet)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": model.steps, "result": outcome, "checkpoint_bytes": sum(written)}


def cost(repeats: int) -> dict:
    jobs = {"lr_find": ("plain", "ours", "lightning"), "power": ("ours", "lightning"),
            "binsearch": ("ours", "lightning")}  # fmt: skip
    runs: dict = {f"{job}, {m}": {tool: [] for tool in tools} for m in MODELS for job, tools in jobs.items()}
    for _ in range(repeats):
        for model_name in MODELS:
            for job, tools in jobs.items():
                for tool in tools:
                    runs[f"{job}, {model_name}"][tool].append(_run_cost(tool, job, model_name))
                    log.info("%s %s %s: %s", job, model_name, tool, runs[f"{job}, {model_name}"][tool][-1])
    return runs


def cost_table(runs: dict) -> str:
    lines = ["| job | tool | wall time (s, median) | training steps | result | checkpoint bytes written |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for job, tools in runs.items():
        for tool, rs in tools.items():
            name = "100 plain steps (trainer.fit)" if tool == "plain" else tool
            result = rs[0]["result"]
            shown = "–" if result is None else (f"{result:.3g}" if isinstance(result, float) else str(result))
            lines.append(f"| {job} | {name} | {statistics.median(r['seconds'] for r in rs):.2f} | {rs[0]['steps']} | "
                         f"{shown} | {rs[0]['checkpoint_bytes']:,} |")  # fmt: skip
    return "\n".join(lines)


# -- quality ------------------------------------------------------------------------------------------------------


def _tuner_suggestion(tool: str, task, data, seed: int) -> tuple[float | None, float, int]:
    quiet = {"progress_bar": False} if tool == "ours" else {}
    sweep = Sweep(*task.finder_range, task.num_training)
    run = run_tuner(TUNERS[tool], lit_task(task, seed), make_loader(task, data, seed), sweep, **quiet)
    return run["suggestion"], run["seconds"], run["steps"]


def quality(seeds: list[int]) -> list[dict]:
    oracle = Oracle(OWN_CACHE, read_also=CACHE_PATH)  # read lr_quality's cache; save new points to our own file
    rows = []
    for task in TASKS:
        data = make_data(task)
        lrs, losses = grid(oracle, task, data)
        best_i = min(range(len(losses)), key=losses.__getitem__)
        best, l0 = (lrs[best_i], losses[best_i]), untrained(oracle, task, data)
        for seed in seeds:
            row = {"task": task.name, "seed": seed, "best_lr": best[0]}
            for tool in TUNERS:
                lr, seconds, steps = _tuner_suggestion(tool, task, data, seed)
                row[tool] = {**score(oracle, task, data, lr, best, l0), "seconds": seconds, "steps": steps}
            oracle.save()
            rows.append(row)
            log.info("%s seed %d: ours %.3f, lightning %.3f", task.name, seed, row["ours"]["gap"],
                     row["lightning"]["gap"])  # fmt: skip
    return rows


def quality_table(rows: list[dict]) -> str:
    """Per task: median / worst gap over finder seeds (median signed decades from the grid's best LR)."""
    lines = ["| task (grid best lr) | ours via Tuner | Lightning's Tuner |", "|---|---|---|"]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    for task in tasks:
        mine = [r for r in rows if r["task"] == task]
        cells = " | ".join(gap_cell([r[tool] for r in mine]) for tool in TUNERS)
        lines.append(f"| {task} ({mine[0]['best_lr']:.1e}) | {cells} |")
    every = " | ".join(gap_cell([r[tool] for r in rows]) for tool in TUNERS)
    lines.append(f"| **all ({len(rows)} runs): median / worst gap (median Δdec)** | {every} |")
    abs_dec = []
    for tool in TUNERS:
        d = [abs(r[tool]["decades"]) for r in rows if r[tool]["decades"] is not None]
        abs_dec.append(f"{statistics.median(d):.2f} / {max(d):.2f}" if d else "–")
    lines.append(f"| **all: median / worst abs Δdec** | {' | '.join(abs_dec)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("cost", "quality", "all"), default="all")
    parser.add_argument("--repeats", type=int, default=2, help="cost runs per tool (interleaved); median reported")
    parser.add_argument("--finder-seeds", type=int, default=1, help="finder seeds per task (quality)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (cost part)")
    parser.add_argument("--out", type=Path, default=RESULTS / "lightning_tuner.json", help="JSON output path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_loggers()
    warnings.filterwarnings("ignore")
    out_path = args.out
    report = json.loads(out_path.read_text()) if out_path.exists() else {}
    started = time.perf_counter()
    if args.part in ("cost", "all"):
        torch.set_num_threads(args.threads)
        runs = cost(args.repeats)
        report["cost"] = {"threads": args.threads, "repeats": args.repeats, "runs": runs, "table": cost_table(runs)}
        print("\n## Wall time through a Lightning Trainer on CPU (10.5M-parameter MLP, and a tiny one)\n")
        print(report["cost"]["table"])
    if args.part in ("quality", "all"):
        torch.set_num_threads(1)
        rows = quality(list(range(100, 100 + args.finder_seeds)))
        report["quality"] = {"rows": rows, "table": quality_table(rows)}
        print("\n## LR suggestion quality through the Tuner path (gap to the grid's best; 0 best, 1 useless)\n")
        print(report["quality"]["table"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {out_path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
