"""Peak memory of a call, the device's memory, and the budget a batch-size search is held to.

How the peak is measured:

* **CUDA**: the caching allocator's own statistics. ``torch.cuda.reset_peak_memory_stats`` before the call and
  ``torch.cuda.max_memory_reserved`` after it. *Reserved* (not *allocated*) is what the allocator took from the
  device, block rounding and cache included, so it is what runs into the device's limit.
* **CPU (Linux)**: the process's peak resident set size. Writing ``"5"`` to ``/proc/self/clear_refs`` resets the
  kernel's high-water mark ``VmHWM`` to the current RSS (Linux >= 4.0); ``VmHWM`` in ``/proc/self/status`` read after
  the call is the peak RSS during it, exact to the page and at no cost while the call runs. Alternatives were
  rejected: a sampling thread misses the millisecond-long peak of a backward pass and steals a core;
  ``tracemalloc`` does not see PyTorch's allocator; ``getrusage`` ``ru_maxrss`` cannot be reset. The peak is the
  whole process's RSS (PyTorch itself holds ~0.5 GB), so a CPU budget in bytes is an RSS ceiling for the process.
* Elsewhere (MPS, XPU, CPU off Linux) the peak is unknown (None); searches then rely on out-of-memory errors only.

The default budget is what this process can actually reach: on CUDA the free device memory plus what PyTorch
already holds, lowered to a cap set with ``torch.cuda.set_per_process_memory_fraction``; on CPU the physical
memory, lowered to the cgroup limit of a container and to an address-space limit (``RLIMIT_AS``) minus the address
space that is mapped but not resident.
"""

from __future__ import annotations

import math
import os
import re
import resource
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
_MIN_BUDGET_BYTES = 1 << 20  # an integer budget below 1 MiB is almost surely a fraction written as an int


def as_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a ``torch.device``; None means the current CUDA device if there is one, else the CPU."""
    if device is None:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(device)


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (None where /proc is missing)."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def cpu_peak_supported() -> bool:
    """Whether the peak RSS can be reset and read here (Linux with a writable ``/proc/self/clear_refs``)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


class PeakMemoryMeter:
    """Measures the peak memory between :meth:`start` and :meth:`stop` on one device.

    Example::

        meter = PeakMemoryMeter("cpu")
        meter.start()
        train_steps()
        peak = meter.stop()  # bytes, or None where the device offers no measurement
    """

    def __init__(self, device: torch.device | str | None = None):
        self.device = as_device(device)
        self.supported = self.device.type == "cuda" or (self.device.type == "cpu" and cpu_peak_supported())

    def start(self) -> None:
        if not self.supported:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _CLEAR_REFS.write_text("5")  # VmHWM := current RSS

    def stop(self) -> int | None:
        if not self.supported:
            return None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_reserved(self.device))
        return _status_kib("VmHWM")


def physical_memory() -> int:
    """Bytes of physical memory of the machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cgroup_limit() -> int | None:
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def _address_space_budget() -> int | None:
    """Resident bytes reachable under ``RLIMIT_AS``: the limit minus the mapped-but-not-resident address space."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    size, rss = _status_kib("VmSize"), _status_kib("VmRSS")
    if soft == resource.RLIM_INFINITY or size is None or rss is None:
        return None
    return max(0, soft - (size - rss))


def address_space_limited() -> bool:
    """Whether this process runs under an address-space limit (``RLIMIT_AS``, ``ulimit -v``)."""
    return resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY


def device_total_memory(device: torch.device | str | None = None) -> int | None:
    """Total memory of ``device``: the GPU's memory, or on CPU the physical memory (lowered to a cgroup limit)."""
    device = as_device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu":
        limits = [physical_memory(), _cgroup_limit()]
        return min(v for v in limits if v is not None)
    return None


def available_memory(device: torch.device | str | None = None) -> int | None:
    """Peak memory this process can reach on ``device`` now (the default budget), None if unknown."""
    device = as_device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        reachable = int(free + torch.cuda.memory_reserved(device))
        # A cap set with torch.cuda.set_per_process_memory_fraction makes the allocator raise OutOfMemoryError
        # above fraction x total; the driver's free memory does not know about it.
        get_fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch >= 2.6
        index = device.index if device.index is not None else torch.cuda.current_device()
        fraction = get_fraction(index) if get_fraction is not None else 1.0
        if fraction < 1.0:
            reachable = min(reachable, int(fraction * device_total_memory(device)))
        return reachable
    if device.type == "cpu":
        limits = [device_total_memory(device), _address_space_budget()]
        return min(v for v in limits if v is not None)
    return None


def check_max_memory(max_memory: int | float | None) -> None:
    """Raise ``ValueError`` unless ``max_memory`` is None, bytes (an int >= 1 MiB) or a fraction in (0, 1]."""
    if max_memory is None:
        return
    if isinstance(max_memory, bool) or not isinstance(max_memory, int | float):
        raise ValueError(
            f"max_memory must be bytes (int) or a fraction of the device's memory in (0, 1], got {max_memory!r}."
        )
    if isinstance(max_memory, float) and (math.isnan(max_memory) or not 0.0 < max_memory <= 1.0):
        raise ValueError(
            f"max_memory={max_memory!r}: a float is a fraction of the device's memory and must lie in (0, 1]."
        )
    if isinstance(max_memory, int) and max_memory < _MIN_BUDGET_BYTES:
        raise ValueError(
            f"max_memory={max_memory} is an int, read as bytes, and is less than 1 MiB: a fraction of the device's "
            "memory is a float (1.0 = all of it, 0.9 = 90 %); bytes must be >= 1 MiB (e.g. 8589934592 for 8 GiB)."
        )


def resolve_budget(max_memory: int | float | None, device: torch.device | str | None = None) -> int | None:
    """The memory budget in bytes: ``max_memory`` bytes, a fraction of the device total, or the default budget."""
    check_max_memory(max_memory)
    if max_memory is None:
        return available_memory(device)
    if isinstance(max_memory, float):
        total = device_total_memory(device)
        if total is None:
            raise ValueError(
                f"max_memory={max_memory} is a fraction, but the total memory of {device} is unknown; pass bytes."
            )
        return int(max_memory * total)
    return int(max_memory)
