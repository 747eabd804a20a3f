"""Loading the experiment configuration: a TOML file, dotted command-line overrides, then validation at the boundary.

A key no section declares, or a value a section refuses, is a ``ConfigError`` naming the file (or the override
that set it), the key and the fix; for an unknown key, the keys its section allows. Every problem of a config is
reported in the one message.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from traenslenzor.doc_classifier.config.sections import ExperimentConfig


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file, the key and the fix."""


def parse_override(text: str) -> tuple[str, Any]:
    """``"trainer_config.max_epochs=3"`` -> ``("trainer_config.max_epochs", 3)``; values are TOML, else strings."""
    key, sep, raw = text.removeprefix("--").partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"Override {text!r} is not of the form --section.key=value (e.g. --trainer_config.max_epochs=3)."
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as --stage=test or a path
    return key, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Set every dotted override in a copy of ``data``; also returns ``{dotted key: override text}``."""
    result = _deep_copy(data)
    origin = {}
    for text in overrides:
        key, value = parse_override(text)
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Override {text!r}: {part!r} is a value, not a section.")
            node = child
        node[leaf] = value
        origin[key] = text
    return result, origin


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a TOML file, apply dotted overrides, validate. Raises ``ConfigError`` with file, key and fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path} (configs live in .configs/, e.g. .configs/quickstart.toml).")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    data, origin = apply_overrides(data, overrides)
    return validate_config(data, source=str(path), origin=origin)


def validate_config(
    data: dict[str, Any], *, source: str = "<config>", origin: dict[str, str] | None = None
) -> ExperimentConfig:
    """Validate a parsed config; every problem is reported in one message (one line when there is one problem)."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err, source, origin or {}) for err in exc.errors()]
        if len(lines) == 1:
            raise ConfigError(f"{source}: invalid configuration: {lines[0]}") from None
        raise ConfigError(f"{source}: invalid configuration:\n" + "\n".join(f"  - {line}" for line in lines)) from None


def _describe(error: Any, source: str, origin: dict[str, str]) -> str:
    loc = tuple(str(part) for part in error["loc"] if not isinstance(part, int))
    dotted = ".".join(loc)
    where = f" (from command-line override {origin[dotted]!r})" if dotted in origin else f" in {source}"
    if error["type"] == "extra_forbidden":
        section = ".".join(loc[:-1]) or "top level"
        allowed = ", ".join(allowed_keys(loc[:-1]))
        return f"unknown key {dotted!r}{where}; [{section}] allows: {allowed}"
    if not loc:  # a whole-config rule (e.g. sections that disagree)
        return error["msg"].removeprefix("Value error, ")
    if isinstance(error.get("input"), dict):  # a whole-section rule: its message names the keys, not the section
        return f"{dotted}: {error['msg'].removeprefix('Value error, ')}"
    return f"{dotted}{where}: {error['msg'].removeprefix('Value error, ')} (got {error.get('input')!r})"


def allowed_keys(section: Sequence[str]) -> list[str]:
    """The keys a section accepts, e.g. ``allowed_keys(["trainer_config"])``."""
    model: type[BaseModel] = ExperimentConfig
    for part in section:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)
