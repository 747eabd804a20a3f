"""How the plain-PyTorch entry points read a batch: device placement, inputs/targets, batch size.

Batches may be tensors, tuples/lists, dicts, namedtuples or dataclass-like objects with a ``.to(device)`` method.
For anything else, pass your own ``step_fn`` / ``to_device`` to the entry point.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

INPUT_KEYS = ("input", "inputs", "x", "image", "images", "pixel_values", "input_ids")
TARGET_KEYS = ("target", "targets", "y", "label", "labels")


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model`` lives: the device of its first parameter, else of its first buffer, else the CPU."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def move_to_device(batch: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Return ``batch`` with every tensor in it moved to ``device`` (structure kept)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return type(batch)({k: move_to_device(v, device, non_blocking) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(v, device, non_blocking) for v in batch)
    to = getattr(batch, "to", None)
    if callable(to):
        return to(device)
    return batch


def concat_batches(batches: Sequence[Any]) -> Any | None:
    """One batch made of ``batches`` joined along the first dimension (structure kept); None where they cannot be.

    Tensors are concatenated; tuples, lists, namedtuples and mappings are joined item by item. Anything else
    (strings, custom objects, tensors whose trailing shapes differ) gives None, so the caller keeps them apart.
    """
    first = batches[0]
    if isinstance(first, torch.Tensor):
        same = all(
            isinstance(b, torch.Tensor) and b.dim() == first.dim() > 0 and b.shape[1:] == first.shape[1:]
            for b in batches
        )
        return torch.cat(list(batches)) if same else None
    if isinstance(first, Mapping):
        if any(not isinstance(b, Mapping) or b.keys() != first.keys() for b in batches):
            return None
        joined = {k: concat_batches([b[k] for b in batches]) for k in first}
        return None if any(v is None for v in joined.values()) else type(first)(joined)
    if isinstance(first, list | tuple):
        if any(type(b) is not type(first) or len(b) != len(first) for b in batches):
            return None
        items = [concat_batches([b[i] for b in batches]) for i in range(len(first))]
        if any(v is None for v in items):
            return None
        return type(first)(*items) if hasattr(first, "_fields") else type(first)(items)
    return None


def split_batch(batch: Any) -> tuple[Any, Any]:
    """Split a batch into ``(inputs, targets)``.

    Sequences give their first two items; mappings are read by the usual key names (``INPUT_KEYS``,
    ``TARGET_KEYS``).
    """
    if isinstance(batch, Mapping):
        inputs = next((batch[k] for k in INPUT_KEYS if k in batch), None)
        targets = next((batch[k] for k in TARGET_KEYS if k in batch), None)
        if inputs is None or targets is None:
            raise ValueError(
                f"Cannot find inputs and targets in a batch with keys {sorted(batch)}: expected one of "
                f"{INPUT_KEYS} and one of {TARGET_KEYS}. Pass step_fn=... to compute the loss yourself."
            )
        return inputs, targets
    if isinstance(batch, Sequence) and not isinstance(batch, str) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError(
        f"Cannot split a batch of type {type(batch).__name__} into (inputs, targets): expected a tuple/list of "
        "at least two items or a dict. Pass step_fn=... to compute the loss yourself."
    )


def cycle(loader: Iterable[Any], error: type[Exception] = ValueError) -> Iterator[Any]:
    """Batches of ``loader`` without end, re-iterated at each epoch boundary: a search is never cut short by the
    end of an epoch. Raises ``error`` when a pass yields nothing (an empty loader, or a one-shot iterator)."""
    seen = 0
    while True:
        before = seen
        for batch in loader:
            seen += 1
            yield batch
        if seen == before:
            if seen:
                raise error(
                    "The data loader yielded no batches on re-iteration: the tuner cycles it, so pass a re-iterable "
                    "one (a DataLoader), not a one-shot iterator."
                )
            raise error(
                "The data loader yielded no batches: check the dataset size, and drop_last=True with a dataset "
                "smaller than the batch size."
            )
