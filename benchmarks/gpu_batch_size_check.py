"""GPU check of the batch-size finder: predicted vs real out-of-memory boundary for torchvision models.

Run on a CUDA machine (not part of CI; about 2-4 minutes on one modern GPU)::

    python -m benchmarks.gpu_batch_size_check [--limit-gib 16] [--models resnet18,resnet50,vit_b_16]

For each model (random weights, nothing downloaded; 224 px inputs, AdamW, fp32) the process's CUDA memory is capped
with ``torch.cuda.set_per_process_memory_fraction`` so that the caching allocator raises real
``torch.OutOfMemoryError`` at ``--limit-gib``. Then:

* *predicted*: the affine memory model ``peak(b) = a + c*b`` fitted to ``max_memory_reserved`` at b = 8 and 16,
  solved for the budget (what ``mode="auto"`` jumps to first);
* *auto*: ``search_batch_size(mode="auto")`` with that budget -- found size, trials, steps;
* *real*: the real boundary, ``search_batch_size(mode="binsearch", margin=0)`` with no budget: bisection on real
  out-of-memory errors.

Prints a markdown table and writes ``benchmarks/results/batch_size_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from benchmarks.common import RESULTS

OUT = RESULTS / "batch_size_gpu.json"
GIB = 2**30
STEPS = 3


def _trial_fn(model: torch.nn.Module, optimizer: torch.optim.Optimizer, counter: list[int]):
    loss_fn = torch.nn.CrossEntropyLoss()

    def run_trial(b: int) -> float:
        x = torch.randn(b, 3, 224, 224, device="cuda")
        y = torch.randint(0, 1000, (b,), device="cuda")
        timed = 0.0
        for step in range(STEPS):
            counter[0] += 1
            torch.cuda.synchronize()
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
            torch.cuda.synchronize()
            if step > 0:
                timed += time.perf_counter() - start
        return timed

    return run_trial


def _search(run_trial, state, **kwargs):
    from traenslenzor.tuner.batch.runner import search_batch_size

    return search_batch_size(
        run_trial, device="cuda", steps_per_trial=STEPS, between_trials=state.restore, progress_bar=False, **kwargs
    )


def check_model(name: str, budget: int) -> dict:
    import torchvision

    from traenslenzor.tuner.batch.memory import PeakMemoryMeter
    from traenslenzor.tuner.batch.search import fit_affine, predict_max_size
    from traenslenzor.tuner.state import TrainingState

    model = getattr(torchvision.models, name)(weights=None).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    state = TrainingState.capture(model, [optimizer])
    counter = [0]
    run_trial = _trial_fn(model, optimizer, counter)

    meter, peaks = PeakMemoryMeter("cuda"), []
    for b in (8, 16):
        meter.start()
        run_trial(b)
        peaks.append(meter.stop())
        state.restore()
        torch.cuda.empty_cache()
    intercept, slope = fit_affine([8, 16], peaks)
    predicted = predict_max_size(intercept, slope, budget)

    counter[0] = 0
    start = time.perf_counter()
    auto = _search(run_trial, state, mode="auto", init_val=8, max_memory=budget)
    auto_s, auto_steps = time.perf_counter() - start, counter[0]
    counter[0] = 0
    start = time.perf_counter()
    real = _search(run_trial, state, mode="binsearch", init_val=8, margin=0.0, max_memory=None)
    real_s, real_steps = time.perf_counter() - start, counter[0]
    state.restore()
    del model, optimizer, state
    torch.cuda.empty_cache()
    return {
        "model": name,
        "peak_8_mib": peaks[0] / 2**20,
        "peak_16_mib": peaks[1] / 2**20,
        "mib_per_sample": slope / 2**20,
        "predicted": predicted,
        "auto": auto.batch_size,
        "auto_trials": auto.num_trials,
        "auto_steps": auto_steps,
        "auto_s": auto_s,
        "auto_trials_seen": [(t.batch_size, t.fits, t.peak_memory and t.peak_memory // 2**20) for t in auto.trials],
        "real": real.batch_size,
        "real_trials": real.num_trials,
        "real_steps": real_steps,
        "real_s": real_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-gib", type=float, default=16.0, help="per-process CUDA memory cap")
    parser.add_argument("--models", default="resnet18,resnet50,vit_b_16")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_batch_size_check.py needs a CUDA device; torch.cuda.is_available() is False here.", file=sys.stderr)
        return 2
    total = torch.cuda.get_device_properties(0).total_memory
    limit = int(args.limit_gib * GIB)
    if limit >= total:
        print(f"--limit-gib {args.limit_gib} is not below the device's {total / GIB:.1f} GiB.", file=sys.stderr)
        return 2
    torch.cuda.set_per_process_memory_fraction(limit / total)
    torch.backends.cudnn.benchmark = False
    rows = [check_model(name, limit) for name in args.models.split(",")]
    print(f"\n{torch.cuda.get_device_name(0)}, per-process cap {args.limit_gib} GiB, fp32, 224 px, AdamW\n")
    print(
        "| model | MiB/sample | predicted | auto (trials, steps, s) | real boundary (trials, steps, s) | "
        "predicted/real |"
    )
    print("|---|---:|---:|---|---|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['mib_per_sample']:.1f} | {r['predicted']} | {r['auto']} ({r['auto_trials']}, "
            f"{r['auto_steps']}, {r['auto_s']:.1f}) | {r['real']} ({r['real_trials']}, {r['real_steps']}, "
            f"{r['real_s']:.1f}) | {r['predicted'] / r['real']:.3f} |"
        )
    for r in rows:
        print(f"{r['model']} auto trials (size, fits, peak MiB): {r['auto_trials_seen']}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps({"device": torch.cuda.get_device_name(0), "limit_gib": args.limit_gib, "rows": rows}, indent=2)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
