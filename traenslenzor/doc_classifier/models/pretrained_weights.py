"""``pretrained = true`` without a file: the model library's own weights, through its own mechanism and cache.

timm keeps its weights in the Hugging Face hub cache (``HF_HOME``, default ``~/.cache/huggingface/hub``; a few older
ones at a URL, in torch's hub cache); torchvision names them with its ``weights=`` enums and keeps them under
``TORCH_HOME`` (default ``~/.cache/torch/hub/checkpoints``). Where there is a network they are downloaded once, by the
library. :func:`check_library_weights` runs before any data is built: weights neither cached nor downloadable (offline,
``HF_HUB_OFFLINE=1``) are one line naming where they were looked for, and the CLI exits with status 2.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from traenslenzor.doc_classifier.models.timm_backbones import is_timm_backbone, timm_name


class WeightsUnavailable(FileNotFoundError):
    """The library's weights are neither cached nor downloadable; the message is one line naming where they were
    looked for (the CLI prints it and exits 2)."""


HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm reads from a hub repository, in order


def _timm_cfg(backbone: str) -> Any:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name(backbone))
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise WeightsUnavailable(
            f"module_config.pretrained = true: timm publishes no weights for {backbone}; pick a tagged name from "
            "timm.list_pretrained(), set pretrained_weights = '<file>', or pretrained = false."
        )
    return cfg


def describe_timm_weights(backbone: str) -> str:
    """Where timm takes ``backbone``'s weights from: ``hf-hub:<repo>`` or the URL."""
    cfg = _timm_cfg(backbone)
    return f"hf-hub:{cfg.hf_hub_id}" if cfg.hf_hub_id else str(cfg.url or cfg.file)


def torch_hub_checkpoints() -> Path:
    """torch's download cache (``$TORCH_HOME/hub/checkpoints``), where torchvision and timm's URL weights go."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _torchvision_weights(name: str) -> Any:
    from torchvision import models as tv_models

    return tv_models.get_model_weights(name).DEFAULT


def torchvision_state_dict(name: str) -> tuple[dict[str, torch.Tensor], str]:
    """torchvision's default weights of model ``name`` (from its cache; downloaded there where there is a network)."""
    weights = _torchvision_weights(name)
    return weights.get_state_dict(progress=False), f"torchvision {weights} ({torch_hub_checkpoints()})"


@contextmanager
def _quiet(*loggers: str):
    """Silence the libraries' retry warnings while a download is attempted: the outcome is reported in one line."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def _fetch_url(url: str) -> Path:
    """The file of ``url`` in torch's hub cache, downloaded there when absent."""
    target = torch_hub_checkpoints() / Path(url).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=False)
    return target


def _fetch_hf(repo: str) -> Path:
    """The weights file of hub repository ``repo``, from the cache or downloaded into it (safetensors first)."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    for filename in HF_WEIGHT_FILES:
        cached = try_to_load_from_cache(repo, filename)
        if isinstance(cached, str):
            return Path(cached)
    error: Exception | None = None
    for filename in HF_WEIGHT_FILES:
        try:
            return Path(hf_hub_download(repo, filename))
        except Exception as exc:  # offline, absent file, no network: all end in the one-line error
            error = exc
    raise OSError(str(error))


def check_library_weights(backbone: str, library: str | None) -> Path:
    """The cached weights file of ``backbone`` (downloaded by the library where there is a network).

    Raises WeightsUnavailable, one line naming the cache, where they can be neither found nor downloaded.
    """
    if is_timm_backbone(backbone):
        cfg = _timm_cfg(backbone)
        from huggingface_hub import constants

        where = f"{constants.HF_HUB_CACHE} (hf-hub:{cfg.hf_hub_id})" if cfg.hf_hub_id else str(torch_hub_checkpoints())
        fetch = (lambda: _fetch_hf(cfg.hf_hub_id)) if cfg.hf_hub_id else (lambda: _fetch_url(cfg.url))
    elif library is not None:
        weights = _torchvision_weights(library)
        where = f"{torch_hub_checkpoints()} (torchvision {weights})"
        fetch = lambda: _fetch_url(weights.url)  # noqa: E731
    else:
        raise WeightsUnavailable(
            f"module_config.pretrained = true: {backbone} has no published weights; set "
            "module_config.pretrained_weights = '<file>' (e.g. a .ckpt this app trained), or pretrained = false."
        )
    try:
        with _quiet("huggingface_hub", "urllib3"):
            return fetch()
    except (OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsUnavailable(
            f"module_config.pretrained = true: no weights for {backbone} in {where}, and they could not be "
            f"downloaded ({type(exc).__name__}: {reason[:120]}); run once with a network to cache them, or set "
            "module_config.pretrained_weights = '<local .pth/.safetensors/.ckpt>', or pretrained = false."
        ) from None
