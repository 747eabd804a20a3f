"""Recognising out-of-memory errors, and freeing memory after one.

The batch-size finder treats an out-of-memory error as "this batch size does not fit" and every other error as a
bug to re-raise. The predicate is therefore narrow: it names, per backend, the exact error type or message that
PyTorch raises when an allocation fails, and nothing that merely looks alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging

import torch

log = logging.getLogger(__name__)

# (backend, message fragment) pairs; a RuntimeError whose text contains the fragment is an out-of-memory error.
OOM_MESSAGES: tuple[tuple[str, str], ...] = (
    # CUDA caching allocator; torch >= 1.13 raises torch.OutOfMemoryError with this text, older builds (and some
    # extensions that re-wrap the error) a plain RuntimeError.
    ("cuda", "CUDA out of memory"),
    # A raw cudaMalloc failing outside the caching allocator (cuBLAS/cuFFT workspaces, NCCL buffers).
    ("cuda", "CUDA error: out of memory"),
    # cuBLAS could not allocate its handle or workspace: memory is exhausted, not an unsupported operation.
    ("cublas", "CUBLAS_STATUS_ALLOC_FAILED"),
    # cuDNN could not allocate a workspace. (CUDNN_STATUS_NOT_SUPPORTED, which Lightning also counts, is left
    # out on purpose: PyTorch raises it for non-contiguous inputs and unsupported configurations at any batch size,
    # so treating it as "too big" would bisect a real bug down to a misleading "batch size 1 does not fit".)
    ("cudnn", "CUDNN_STATUS_ALLOC_FAILED"),
    # PyTorch's CPU allocator (c10/core/impl/alloc_cpu.cpp) when posix_memalign fails, e.g. under RLIMIT_AS.
    ("cpu", "DefaultCPUAllocator: can't allocate memory"),
    # oneDNN (mkldnn) convolutions report a failed scratch-pad allocation on CPU this way (seen under RLIMIT_AS).
    ("onednn", "could not create a primitive"),
    # Apple MPS allocator (aten/src/ATen/mps/MPSAllocator.mm).
    ("mps", "MPS backend out of memory"),
    # Intel XPU allocator (c10/xpu/XPUCachingAllocator.cpp).
    ("xpu", "XPU out of memory"),
    # ROCm builds report the CUDA allocator's error with HIP in its name.
    ("hip", "HIP out of memory"),
)


def is_oom_error(exc: BaseException) -> bool:
    """Whether ``exc`` says that a memory allocation failed (on any backend PyTorch supports).

    True for ``torch.OutOfMemoryError`` (alias ``torch.cuda.OutOfMemoryError``), Python's own ``MemoryError``
    (numpy or Python objects failing to allocate in a data pipeline), and a ``RuntimeError`` carrying one of the
    messages in :data:`OOM_MESSAGES`. False for everything else, including ``KeyboardInterrupt``.
    """
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc)
    return any(fragment in text for _, fragment in OOM_MESSAGES)


def oom_backend(exc: BaseException) -> str | None:
    """The backend whose out-of-memory message ``exc`` carries (``"cuda"``, ``"cpu"``, ...), or None."""
    if not is_oom_error(exc):
        return None
    text = str(exc)
    for backend, fragment in OOM_MESSAGES:
        if fragment in text:
            return backend
    return "python" if isinstance(exc, MemoryError) else "torch"


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
PINNED_MMAP_THRESHOLD = 256 * 1024


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")  # runs ldconfig: look it up once
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018 -- glibc only (not musl, not macOS)
    except (OSError, AttributeError):
        return None
    return libc


def release_heap() -> None:
    """Return freed C-heap pages to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Freed activations otherwise stay resident in the malloc arenas and inflate the next trial's measured peak.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(ctypes.c_size_t(0))


def pin_mmap_threshold() -> bool:
    """Serve every allocation above 256 KiB by ``mmap`` from now on (glibc ``mallopt``); True if it took effect.

    glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which activations come
    from the brk heap. A failed trial then leaves that heap fragmented: its freed middle cannot be unmapped, so
    under an address-space limit (``RLIMIT_AS``, ``ulimit -v``) every later trial fails early -- 74 fits, then 73
    fails. With the threshold pinned, freed tensors are unmapped at once. glibc cannot return to its dynamic
    threshold, so the setting stays for the rest of the process; training then allocates the way the search
    measured. Called only where such a limit is set.
    """
    libc = _glibc()
    return libc is not None and libc.mallopt(M_MMAP_THRESHOLD, PINNED_MMAP_THRESHOLD) == 1


def free_memory() -> None:
    """Collect garbage and hand cached device memory back: gc, every initialised device cache, the C heap.

    Call it after dropping every reference to the failed batch, its outputs and its autograd graph (including the
    exception, whose traceback holds the frames that hold them).
    """
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        xpu.empty_cache()
    release_heap()
