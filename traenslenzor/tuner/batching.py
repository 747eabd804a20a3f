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
