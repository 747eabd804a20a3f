"""The tuning record: what tuning found, and a fingerprint of everything that would make it wrong.

Tuning is done once and repeated only when something it depends on (a trigger) changes:

- **batch size:** the device, the architecture, the image resolution, mixed precision;
- **learning rate:** the model, the optimizer, fine-tuning versus training from scratch, the stage of training,
  the suggestion rule that read the curve (its name and, for the tuner's default, its version), the per-group LR
  ratios and phases of ``[module_config.finetune]`` (and a batch-size change, which the workflow follows by
  rescaling the LR instead; ``steps.py``);
- **the confirmed learning rate** (``--confirm-learning-rate``): the LR's triggers, and what its trials depend on
  besides (the suggestion, the candidates and rungs, the schedule; ``confirm/trials.py``: ``confirm_fingerprint``).

Each search's entry in ``tuning_results.json`` keeps its value and a fingerprint: one JSON value per trigger,
named. A later run computes today's fingerprint and compares it trigger by trigger: equal, the value is reused in
seconds; different, the log names the trigger that changed and only that search runs again. A file that cannot be
read, or that another format wrote, is ignored with a warning: never a crash, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from traenslenzor.doc_classifier.atomic_file import atomic_write_text
from traenslenzor.doc_classifier.config import ExperimentConfig
from traenslenzor.doc_classifier.log import say
from traenslenzor.tuner import DEFAULT_RULE_VERSION, DEFAULT_SUGGESTION

# Written at the top of the file; a file without it (or with another value) is from an older format.
RECORD_FORMAT = "traenslenzor.tuning_record/2"

# The [tuner_config] keys each search reads: changing one re-runs that search.
BATCH_SEARCH_KEYS = ("batch_size_mode", "init_val", "max_trials", "steps_per_trial", "margin", "max_val", "max_memory")
LR_SEARCH_KEYS = (
    "min_lr",
    "max_lr",
    "num_training",
    "lr_mode",
    "early_stop_threshold",
    "suggestion_method",
    "adaptive_range",
)

Fingerprint = dict[str, Any]
_ENTRY_KEYS = frozenset({"values", "fingerprint", "tuned_at"})
# The values each search's entry must hold to be used.
_VALUE_KEYS = {
    "batch_size": {"batch_size"},
    "learning_rate": {"learning_rate", "weight_decay", "global_batch"},
    "learning_rate_head": {"learning_rate", "weight_decay", "global_batch"},  # fine-tuning's frozen phase
    "lr_confirm": {"learning_rate", "suggestion", "study"},  # the LR confirmed by training (confirm/trials.py)
}


# --- the triggers --------------------------------------------------------------------------------------------------


def device_trigger(device: torch.device) -> dict[str, Any]:
    """Kind, name and total memory of the device the search ran on (memory is what a batch size depends on)."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"kind": "cuda", "name": props.name, "total_memory": int(props.total_memory)}
    if device.type == "cpu":
        pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
        return {"kind": "cpu", "name": _cpu_name(), "total_memory": int(pages * os.sysconf("SC_PAGE_SIZE"))}
    return {"kind": device.type, "name": str(device), "total_memory": None}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def model_trigger(backbone: str, model: nn.Module) -> dict[str, Any]:
    """Backbone, parameter count, a hash of the module structure, and which parameters are trainable."""
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    return {
        "backbone": backbone,
        "parameters": sum(p.numel() for p in model.parameters()),
        "structure": _digest(repr(model)),  # layer types and shapes, in order
        "trainable": _digest("\n".join(trainable)),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def batch_fingerprint(
    config: ExperimentConfig, device: dict[str, Any], model: dict[str, Any], max_val: int | None = None
) -> Fingerprint:
    """The triggers of the batch size: device, model, input, precision, what the search sizes, its settings.

    ``max_val`` is the bound the search runs to when the app lowered ``max_val`` (the steps-per-epoch cap of a
    search that memory does not bound): a record searched to another bound is searched again.
    """
    dm, tc = config.datamodule_config, config.tuner_config
    settings = {key: getattr(tc, key) for key in BATCH_SEARCH_KEYS}
    if max_val is not None:
        settings["max_val"] = max_val
    return {
        "device": device,
        "model": model,
        "input": {"image_size": dm.image_size, "channels": dm.channels},
        "precision": config.trainer_config.precision,
        "stage": config.lightning_method,  # fit sizes with gradients, validate/test without
        "tuner settings": settings,
    }


def rule_trigger(method: str | None) -> dict[str, Any]:
    """The suggestion rule the LR is read with: ``method`` (None: the tuner's default rule) and, for the default
    rule, the version of its reading (``DEFAULT_RULE_VERSION``): an LR read under another rule, or under another
    version of the default, is searched again."""
    name = DEFAULT_SUGGESTION if method is None else method
    return {"name": name, "version": DEFAULT_RULE_VERSION if name == DEFAULT_SUGGESTION else None}


def lr_fingerprint(config: ExperimentConfig, model: dict[str, Any]) -> Fingerprint:
    """The triggers of the LR: model, optimizer, start of training, data, the sweep's settings, the rule.

    The optimizer's ``learning_rate`` is not one (it is what the search writes), nor is ``weight_decay`` for AdamW
    (the LR rescale moves it, ``rescale_weight_decay``); the batch the LR was found with is kept beside the value,
    not in the fingerprint: a different batch rescales the LR rather than re-running the search.
    """
    mc, dm, tc = config.module_config, config.datamodule_config, config.tuner_config
    optimizer = mc.optimizer.model_dump(mode="json", exclude={"learning_rate"})
    if mc.optimizer.name == "adamw":
        optimizer.pop("weight_decay")
    start = {"pretrained": mc.pretrained, "from_checkpoint": config.ckpt_path is not None}
    if mc.pretrained_weights is not None:
        start["pretrained_weights"] = str(mc.pretrained_weights)
    finetune = mc.finetune.model_dump(mode="json")
    fingerprint = {"finetune": finetune} if finetune != type(mc.finetune)().model_dump(mode="json") else {}
    return {
        **fingerprint,  # per-group LR ratios and phases; absent at their defaults (one LR, one phase)
        "model": model,
        "optimizer": optimizer,
        "start": start,
        "data": {
            "source": dm.source,
            "root": None if dm.root is None else str(dm.root),
            "size": dm.synthetic_train_size if dm.source == "synthetic" else None,
            "limit_train_samples": dm.limit_train_samples,
        },
        "tuner settings": {key: getattr(tc, key) for key in LR_SEARCH_KEYS},
        "rule": rule_trigger(tc.suggestion_method),
    }


def changed_triggers(recorded: Fingerprint, current: Fingerprint) -> list[str]:
    """The triggers whose value differs, as ``name (old -> new)``; a trigger the record does not hold (a record
    written before it was one) as ``name (not recorded -> new)``."""
    changes = []
    for name in current.keys() | recorded.keys():
        old, new = recorded.get(name), _jsonable(current.get(name))
        if old == new:
            continue
        if name not in recorded:
            shown = ", ".join(f"{k} {v!r}" for k, v in new.items()) if isinstance(new, dict) else repr(new)
            changes.append(f"{name} (not recorded -> {shown})")
        elif isinstance(old, dict) and isinstance(new, dict):
            parts = [
                f"{key} {old.get(key)!r} -> {new.get(key)!r}"
                for key in new.keys() | old.keys()
                if old.get(key) != new.get(key)
            ]
            changes.append(f"{name} ({', '.join(sorted(parts))})")
        else:
            changes.append(f"{name} ({old!r} -> {new!r})")
    return sorted(changes)


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, paths strings), so comparisons are fair."""
    return json.loads(json.dumps(value, default=str))


# --- the file ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One search's record: its values, the fingerprint they were found under, when, and the search's details
    (the batch trials, the LR curve) for whoever reads the file."""

    values: dict[str, Any]
    fingerprint: Fingerprint
    tuned_at: str
    details: dict[str, Any] = field(default_factory=dict)


def load_record(path: Path) -> dict[str, Entry]:
    """``{"batch_size": Entry, "learning_rate": Entry, "lr_confirm": Entry}`` (any may be missing); ``{}`` for no
    usable file.

    A file that is not JSON, not this format, or missing fields is ignored with a warning naming the cause.
    """
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _ignore(path, f"it cannot be read ({exc})")
        return {}
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        _ignore(path, f"it is from an older format ({found!r}, expected {RECORD_FORMAT!r})")
        return {}
    entries = {}
    for name in _VALUE_KEYS:
        raw = data.get(name)
        if raw is None:
            continue
        try:
            missing = _VALUE_KEYS[name] - set(raw["values"])
            if missing:
                raise KeyError(", ".join(sorted(missing)))
            details = {key: value for key, value in raw.items() if key not in _ENTRY_KEYS}
            entries[name] = Entry(dict(raw["values"]), dict(raw["fingerprint"]), str(raw["tuned_at"]), details)
        except (KeyError, TypeError, ValueError) as exc:
            _ignore(path, f"its {name!r} entry is incomplete ({type(exc).__name__}: {exc})")
            return {}
    return entries


def _ignore(path: Path, why: str) -> None:
    say("Ignoring the tuning record %s: %s; tuning from scratch.", path, why, level=logging.WARNING)


def new_entry(values: dict[str, Any], fingerprint: Fingerprint, details: dict[str, Any]) -> Entry:
    """An entry for a search that just ran, stamped now (UTC)."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return Entry(_jsonable(values), _jsonable(fingerprint), stamp, _jsonable(details))


def record_text(entries: dict[str, Entry]) -> str:
    """The record as JSON: its format, then each search's values, stamp, fingerprint and details."""
    data: dict[str, Any] = {"format": RECORD_FORMAT}
    for name, item in entries.items():
        data[name] = {"values": item.values, "tuned_at": item.tuned_at, "fingerprint": item.fingerprint, **item.details}
    return json.dumps(data, indent=2) + "\n"


def write_record(path: Path, entries: dict[str, Entry]) -> None:
    """Write the record to ``path`` in one step (its folder made when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, record_text(entries))
