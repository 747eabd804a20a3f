"""is_oom_error knows each backend's real out-of-memory error and nothing else; free_memory releases garbage."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from traenslenzor.tuner.oom import OOM_MESSAGES, free_memory, is_oom_error, oom_backend

# The texts PyTorch raises, copied from the allocators named in oom.py.
REAL_OOMS = [
    (
        "cuda",
        torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
            "79.15 GiB of which 1.02 GiB is free."
        ),
    ),
    ("cuda", RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total capacity)")),
    ("cuda", RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported")),
    ("cublas", RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")),
    ("cudnn", RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")),
    ("onednn", RuntimeError("could not create a primitive")),
    (
        "mps",
        RuntimeError(
            "MPS backend out of memory (MPS allocated: 17.74 GB, other allocations: 1.02 GB, max "
            "allowed: 18.13 GB). Tried to allocate 256.00 MB on private pool."
        ),
    ),
    ("xpu", torch.OutOfMemoryError("XPU out of memory. Tried to allocate 1024.00 MiB (GPU 0; 15.11 GiB total)")),
    (
        "hip",
        torch.OutOfMemoryError(
            "HIP out of memory. Tried to allocate 4.00 GiB. GPU 0 has a total capacity of 63.98 GiB"
        ),
    ),
]

NOT_OOM = [
    RuntimeError(
        "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input."
    ),
    RuntimeError("CUDA error: device-side assert triggered"),
    RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x5)"),
    ValueError("CUDA out of memory"),  # right words, wrong type: not raised by an allocator
    KeyboardInterrupt(),
    torch.AcceleratorError("CUDA error: an illegal memory access was encountered"),
]


@pytest.mark.parametrize(("backend", "exc"), REAL_OOMS, ids=[f"{b}-{i}" for i, (b, _) in enumerate(REAL_OOMS)])
def test_each_backend_oom_is_recognised(backend: str, exc: BaseException) -> None:
    assert is_oom_error(exc)
    assert oom_backend(exc) == backend


def test_real_cpu_allocator_error_is_recognised() -> None:
    with pytest.raises(RuntimeError) as info:
        torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: the real posix_memalign failure
    assert is_oom_error(info.value)
    assert oom_backend(info.value) == "cpu"


def test_torch_cuda_out_of_memory_error_is_the_same_type() -> None:
    assert is_oom_error(torch.cuda.OutOfMemoryError("anything"))
    assert is_oom_error(MemoryError())
    assert oom_backend(MemoryError()) == "python"


@pytest.mark.parametrize("exc", NOT_OOM, ids=lambda e: type(e).__name__)
def test_other_errors_are_not_oom(exc: BaseException) -> None:
    assert not is_oom_error(exc)
    assert oom_backend(exc) is None


def test_every_listed_backend_has_a_test() -> None:
    tested = {b for b, _ in REAL_OOMS} | {"cpu"}  # cpu: the real allocator error above
    assert {b for b, _ in OOM_MESSAGES} == tested


def test_free_memory_collects_unreachable_tensors() -> None:
    class Holder:
        pass

    a, b = Holder(), Holder()
    a.other, b.other = b, a  # a reference cycle: only the cycle collector frees it
    a.tensor = torch.ones(1000)
    alive = weakref.ref(a.tensor)
    gc.disable()
    try:
        del a, b
        assert alive() is not None
        free_memory()
        assert alive() is None
    finally:
        gc.enable()
