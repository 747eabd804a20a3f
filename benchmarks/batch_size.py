"""Batch-size finder benchmark: ours (power, binsearch, auto, throughput) beside Lightning's ``scale_batch_size``.

Two parts, one run (``python -m benchmarks.batch_size``):

* **Simulated device** -- a pure comparison of search logic. A deterministic device whose peak memory is affine in
  the batch size (``base + per_sample * b``), with a +-1 % per-size wobble of the activation memory (kernel
  workspaces differ per shape) and 2 MiB block rounding; a step over capacity raises the real
  ``torch.OutOfMemoryError`` CUDA message. Lightning runs its real ``Tuner.scale_batch_size`` on a LightningModule
  whose ``training_step`` calls the device; ours runs :func:`search_batch_size` with the device's peak reading as
  the meter and its capacity as ``max_memory``. The device also reports a deterministic step time ``t0 + t1 * b``
  so that throughput mode has a curve to read.
* **Real CPU memory limit** -- each tool in a fresh subprocess per model, with ``resource.setrlimit(RLIMIT_AS)``
  set after imports and model setup to the process's address space plus the same headroom, so the CPU allocator
  raises real ``DefaultCPUAllocator: can't allocate memory`` errors. The true largest size is found by bisection
  over fresh forked processes (one per probed size, each under the same limit), then a scan upwards until three
  sizes in a row fail; it is the larger of the results with glibc's default malloc and with the mmap threshold
  pinned (as ours does under an address-space limit). Every process runs with oneDNN's primitive cache off
  (``ONEDNN_PRIMITIVE_CACHE_CAPACITY=0``; ``--onednn-cache on`` keeps it): the cache keeps ~7 MiB of *address space*
  (not resident memory) per batch size tried, so under ``RLIMIT_AS`` each trial of a search shrinks the room of the
  next while the fresh processes that measure the true maximum never pay for it -- an artefact of using an
  address-space limit as the memory limit that GPU memory does not have.

Columns: found size, whether it fits (for Lightning: whether it is <= the true maximum; ours only returns sizes it
ran), the true largest fitting size, trials, training steps (forward passes started), wall time. Writes
``benchmarks/results/batch_size.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.common import RESULTS, cpu_trainer

OUT = RESULTS / "batch_size.json"
REPO = Path(__file__).resolve().parent.parent  # the workers run as `python -m benchmarks.batch_size` from here
MIB = 2**20
GIB = 2**30
STEPS = 3
OURS = ("power", "binsearch", "auto", "throughput")
LIGHTNING = ("power", "binsearch")


# -- simulated device ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimModel:
    name: str
    base: int  # weights, gradients, optimizer state, context
    per_sample: int  # activations per sample
    capacity: int  # device memory
    t0: float = 0.02  # fixed seconds per step
    t1: float = 0.0005  # seconds per sample per step

    def need(self, b: int) -> int:
        wobble = ((b * 2654435761) % 1001) / 500.0 - 1.0  # deterministic, in [-1, 1]
        raw = self.base + self.per_sample * b * (1.0 + 0.01 * wobble)
        return int(-(-raw // (2 * MIB)) * (2 * MIB))  # 2 MiB allocator blocks

    def true_max(self, max_val: int = 8192) -> int:
        return max((b for b in range(1, max_val + 1) if self.need(b) <= self.capacity), default=0)


SIM_MODELS = (
    SimModel("resnet50-like, 24 GiB", base=int(0.6 * GIB), per_sample=95 * MIB, capacity=24 * GIB),
    SimModel("vit-b16-like, 80 GiB", base=int(1.6 * GIB), per_sample=150 * MIB, capacity=80 * GIB),
    SimModel("alexnet-like 64px, 16 GiB", base=int(0.9 * GIB), per_sample=int(2.5 * MIB), capacity=16 * GIB),
)


class SimDevice:
    """Counts trials and steps; raises the CUDA OOM error when a step needs more than the capacity."""

    def __init__(self, model: SimModel):
        self.model = model
        self.trials = 0
        self.steps = 0
        self.last = 0

    def step(self, b: int) -> None:
        self.steps += 1
        if self.model.need(b) > self.model.capacity:
            need = self.model.need(b) / GIB
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {need:.2f} GiB (simulated).")
        self.last = b

    def run_trial(self, b: int) -> float:
        self.trials += 1
        for _ in range(STEPS):
            self.step(b)
        return (STEPS - 1) * (self.model.t0 + self.model.t1 * b)

    # the meter interface of search_batch_size
    def start(self) -> None:
        self.last = 0

    def stop(self) -> int | None:
        return self.model.need(self.last) if self.last else None


def _sim_lightning(model: SimModel, mode: str) -> dict:
    import lightning as L
    from lightning.pytorch.tuner import Tuner

    device = SimDevice(model)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.batch_size = 2
            self.w = torch.nn.Parameter(torch.zeros(1))

        def on_train_start(self) -> None:
            device.trials += 1

        def training_step(self, batch, batch_idx):
            device.step(batch[0].shape[0])
            return (self.w * batch[0].mean()).sum()

        def train_dataloader(self):
            data = torch.utils.data.TensorDataset(torch.zeros(20000, 1))
            return torch.utils.data.DataLoader(data, batch_size=self.batch_size)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        found = Tuner(cpu_trainer(root)).scale_batch_size(Module(), mode=mode, steps_per_trial=STEPS)
        wall = time.perf_counter() - start
    return _row(
        model.name,
        "lightning",
        mode,
        found,
        found is not None and model.need(found) <= model.capacity,
        model.true_max(),
        device.trials,
        device.steps,
        wall,
    )


def _sim_ours(model: SimModel, mode: str, margin: float | None = None) -> dict:
    from traenslenzor.tuner.batch.runner import search_batch_size

    device = SimDevice(model)
    start = time.perf_counter()
    result = search_batch_size(
        device.run_trial,
        mode=mode,
        **({} if margin is None else {"margin": margin}),  # None: the engine's default
        max_memory=model.capacity,
        meter=device,
        device="cpu",
        steps_per_trial=STEPS,
        progress_bar=False,
    )
    wall = time.perf_counter() - start
    return _row(
        model.name,
        "ours",
        mode,
        result.batch_size,
        result.chosen_trial.fits,
        model.true_max(),
        device.trials,
        device.steps,
        wall,
    )


def _row(
    model: str, tool: str, mode: str, found: int | None, fits: bool, true_max: int, trials: int, steps: int, wall: float
) -> dict:
    return {
        "model": model,
        "tool": tool,
        "mode": mode,
        "found": found,
        "fits": fits,
        "true_max": true_max,
        "ratio": (found or 0) / true_max if true_max else None,
        "trials": trials,
        "steps": steps,
        "wall_s": round(wall, 3),
    }


def run_simulated() -> list[dict]:
    rows = []
    for model in SIM_MODELS:
        rows += [_sim_lightning(model, mode) for mode in LIGHTNING]
        rows += [_sim_ours(model, mode) for mode in OURS]
        for margin in (0.0, 0.05):  # the search itself, without the safety cut; with Lightning's cut
            rows.append(_sim_ours(model, "binsearch", margin=margin))
            rows[-1]["mode"] = f"binsearch margin={margin:g}"
    return rows


# -- real CPU memory limit ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuModel:
    name: str
    image: int  # side of the square input image
    channels: int


CPU_MODELS = (CpuModel("cnn 96px", image=96, channels=16), CpuModel("cnn-bn 64px", image=64, channels=32))


def _build(spec: CpuModel):
    from torch import nn

    c = spec.channels
    layers = [nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 2 * c, 3, padding=1, stride=2)]
    if "bn" in spec.name:
        layers.append(nn.BatchNorm2d(2 * c))
    layers += [
        nn.ReLU(),
        nn.Conv2d(2 * c, 2 * c, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * c, 16),
    ]
    model = nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, optimizer


class Images(torch.utils.data.Dataset):
    """Random images made on the fly (no dataset held in memory)."""

    def __init__(self, side: int, length: int = 4096):
        self.side, self.length = side, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        return torch.randn(3, self.side, self.side, generator=g), torch.randint(0, 16, (), generator=g)


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _limit_address_space(headroom: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_status("VmSize") + headroom, hard))


def _train_steps(model, optimizer, loader_iter, counter: list[int]) -> None:
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(STEPS):
        x, y = next(loader_iter)
        counter[0] += 1
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()


def _probe_fresh(spec: CpuModel, headroom: int, b: int, pinned: bool) -> bool:
    """Whether ``b`` trains ``STEPS`` steps in a fresh forked process under the limit."""
    from traenslenzor.tuner.oom import pin_mmap_threshold

    model, optimizer = _build(spec)
    loader = torch.utils.data.DataLoader(Images(spec.image), batch_size=b)
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            if pinned:
                pin_mmap_threshold()
            _limit_address_space(headroom)
            _train_steps(model, optimizer, iter(loader), [0])
            code = 0
        except BaseException:  # an OOM (or anything else) means "does not fit"
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _largest_fresh(spec: CpuModel, headroom: int, pinned: bool) -> int:
    """Bisection over fresh processes, then a scan upwards until three sizes in a row fail."""
    low, high = 0, 8
    while _probe_fresh(spec, headroom, high, pinned):
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if _probe_fresh(spec, headroom, mid, pinned) else (low, mid)
    failures, size = 0, low
    while failures < 3:  # the limit is only nearly monotone (page rounding, allocator history)
        size += 1
        if _probe_fresh(spec, headroom, size, pinned):
            low, failures = size, 0
        else:
            failures += 1
    return low


def _worker_truth(spec: CpuModel, headroom: int) -> dict:
    """The largest size that trains in a fresh process, with glibc's default malloc or the pinned threshold."""
    start = time.perf_counter()
    default = _largest_fresh(spec, headroom, pinned=False)
    pinned = _largest_fresh(spec, headroom, pinned=True)
    wall = round(time.perf_counter() - start, 1)
    return {"true_max": max(default, pinned), "default_malloc": default, "pinned_mmap": pinned, "wall_s": wall}


def _worker_ours(spec: CpuModel, headroom: int, mode: str) -> dict:
    from traenslenzor.tuner.batch.finder import find_batch_size

    model, optimizer = _build(spec)
    counter = [0]
    model.register_forward_pre_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    data = Images(spec.image)
    _limit_address_space(headroom)
    start = time.perf_counter()
    result = find_batch_size(
        model, optimizer, torch.nn.CrossEntropyLoss(), data, mode=mode, steps_per_trial=STEPS, progress_bar=False
    )
    wall = time.perf_counter() - start
    sequence = " ".join(f"{t.batch_size}{'+' if t.fits else '-'}" for t in result.trials)
    return {
        "sequence": sequence,
        "found": result.batch_size,
        "fits": result.chosen_trial.fits,
        "trials": result.num_trials,
        "steps": counter[0],
        "wall_s": round(wall, 2),
        "result": result.to_dict(),
    }


def _worker_lightning(spec: CpuModel, headroom: int, mode: str) -> dict:
    import lightning as L
    from lightning.pytorch.tuner import Tuner

    net, _ = _build(spec)
    counter, sizes = [0], []

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.batch_size = 2
            self.net = net

        def on_train_start(self) -> None:
            sizes.append(self.batch_size)

        def training_step(self, batch, batch_idx):
            counter[0] += 1
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(Images(spec.image), batch_size=self.batch_size)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    with tempfile.TemporaryDirectory() as root:
        trainer = cpu_trainer(root)
        module = Module()
        _limit_address_space(headroom)
        start = time.perf_counter()
        found = Tuner(trainer).scale_batch_size(module, mode=mode, steps_per_trial=STEPS)
        wall = time.perf_counter() - start
    return {"found": found, "trials": len(sizes), "steps": counter[0], "wall_s": round(wall, 2), "sizes": sizes}


def _worker(args: dict) -> dict:
    torch.set_num_threads(1)
    spec = CpuModel(**args["spec"])
    if args["tool"] == "truth":
        return _worker_truth(spec, args["headroom"])
    if args["tool"] == "ours":
        return _worker_ours(spec, args["headroom"], args["mode"])
    return _worker_lightning(spec, args["headroom"], args["mode"])


def _spawn(tool: str, spec: CpuModel, headroom: int, mode: str | None = None, onednn_cache: bool = False) -> dict:
    job = json.dumps({"tool": tool, "spec": asdict(spec), "headroom": headroom, "mode": mode})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("ONEDNN_PRIMITIVE_CACHE_CAPACITY", None)
    if not onednn_cache:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "0"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.batch_size", "--worker", job],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=REPO,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        if done.returncode < 0:
            return {"error": f"crashed: killed by signal {-done.returncode} ({signal.Signals(-done.returncode).name})"}
        last = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return {"error": f"crashed: {last[-1] if last else f'exit {done.returncode}'}"}
    return json.loads(lines[-1])


def run_cpu(headroom: int, onednn_cache: bool = False) -> list[dict]:
    rows = []
    for spec in CPU_MODELS:
        truth = _spawn("truth", spec, headroom, onednn_cache=onednn_cache)
        true_max = truth.get("true_max", 0)
        logging.info("%s: true max %s (%s)", spec.name, true_max, truth)
        for tool, modes in (("lightning", LIGHTNING), ("ours", OURS)):
            for mode in modes:
                out = _spawn(tool, spec, headroom, mode, onednn_cache=onednn_cache)
                if "error" in out:
                    logging.warning("%s %s %s failed: %s", spec.name, tool, mode, out["error"])
                    rows.append(
                        {"model": spec.name, "tool": tool, "mode": mode, "error": out["error"][-200:], "truth": truth}
                    )
                    continue
                found = out["found"]
                fits = out.get("fits", found is not None and found <= true_max)
                row = _row(spec.name, tool, mode, found, fits, true_max, out["trials"], out["steps"], out["wall_s"])
                row["truth"] = truth
                row["sequence"] = out.get("sequence") or " ".join(map(str, out.get("sizes", [])))
                rows.append(row)
    return rows


# -- report -------------------------------------------------------------------------------------------------------


def table(rows: list[dict]) -> str:
    head = "| model | tool | mode | found | fits | true max | found/true | trials | steps | wall s |"
    lines = [head, "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['tool']} | {r['mode']} | {r['error'][:70]} | | | | | | |")
            continue
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
        lines.append(
            f"| {r['model']} | {r['tool']} | {r['mode']} | {r['found']} | {'yes' if r['fits'] else 'NO'} | "
            f"{r['true_max']} | {ratio} | {r['trials']} | {r['steps']} | {r['wall_s']:.2f} |"
        )
    return "\n".join(lines)


def checks(rows: list[dict]) -> list[str]:
    """The issue's done-when: binsearch/auto fit and reach 95 %; auto <= half of Lightning binsearch's steps."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        got = {(r["tool"], r["mode"]): r for r in rows if r["model"] == model and "error" not in r}
        for mode in ("binsearch", "auto"):
            r = got.get(("ours", mode))
            if r:
                ok = r["fits"] and r["ratio"] >= 0.95
                out.append(
                    f"{model}: ours {mode} fits and >= 95 % of true max: {'PASS' if ok else 'FAIL'} ({r['ratio']:.3f})"
                )
        auto, light = got.get(("ours", "auto")), got.get(("lightning", "binsearch"))
        if auto and light:
            ok = auto["steps"] * 2 <= light["steps"]
            out.append(
                f"{model}: auto steps {auto['steps']} <= half of Lightning binsearch {light['steps']}: "
                f"{'PASS' if ok else 'FAIL'}"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "sim", "cpu"), default="all")
    parser.add_argument("--headroom-mib", type=int, default=320, help="address space above the post-import size")
    parser.add_argument(
        "--onednn-cache", choices=("off", "on"), default="off", help="oneDNN primitive cache in the CPU part"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("traenslenzor").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    report: dict = {"steps_per_trial": STEPS, "headroom_mib": args.headroom_mib, "onednn_cache": args.onednn_cache}
    start = time.perf_counter()
    if args.part in ("all", "sim"):
        report["simulated"] = run_simulated()
        print("\n## Simulated device (deterministic; pure search logic)\n")
        print(table(report["simulated"]))
        print("\n" + "\n".join(checks(report["simulated"])))
    if args.part in ("all", "cpu"):
        report["cpu"] = run_cpu(args.headroom_mib * MIB, onednn_cache=args.onednn_cache == "on")
        print(
            f"\n## Real CPU memory limit (RLIMIT_AS = post-import size + {args.headroom_mib} MiB, fresh process "
            f"per tool and model, oneDNN primitive cache {args.onednn_cache})\n"
        )
        print(table(report["cpu"]))
        for model in dict.fromkeys(r["model"] for r in report["cpu"]):
            truth = next(r["truth"] for r in report["cpu"] if r["model"] == model)
            print(
                f"\n{model}: largest size in a fresh process: {truth.get('default_malloc')} with glibc's default "
                f"malloc, {truth.get('pinned_mmap')} with the mmap threshold pinned; true max = the larger"
            )
        print("\n" + "\n".join(checks(report["cpu"])))
    report["total_wall_s"] = round(time.perf_counter() - start, 1)
    print(f"\ntotal wall time: {report['total_wall_s']} s")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    name = OUT if args.part == "all" else OUT.with_name(f"batch_size_{args.part}.json")
    name.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {name}")


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    main()
