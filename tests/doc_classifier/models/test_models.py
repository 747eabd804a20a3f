"""Backbones: shapes, 1-channel input, no downloads, and loading local weights (grayscale adaptation, head skip)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from traenslenzor.doc_classifier.models.backbones import (
    BACKBONES,
    build_model,
    load_pretrained,
    resample_vit_positions,
)


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize(
    ("backbone", "image_size"), [("tiny_cnn", 32), ("alexnet", 64), ("resnet50", 32), ("vit_b_16", 32)]
)
def test_every_backbone_classifies_grayscale_pages(backbone: str, image_size: int) -> None:
    model = build_model(backbone, num_classes=16, in_channels=1, dropout=0.1, image_size=image_size).eval()
    assert _first_conv(model).in_channels == 1
    with torch.no_grad():
        logits = model(torch.randn(2, 1, image_size, image_size))
    assert logits.shape == (2, 16)
    state = model.state_dict()
    assert state[BACKBONES[backbone].first_conv_key].shape[1] == 1  # the key the weight loader adapts exists
    dropouts = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert 0.1 in dropouts  # the configured dropout reaches every backbone (ResNet gets one before fc)


def test_rgb_input_keeps_torchvisions_first_conv() -> None:
    model = build_model("alexnet", num_classes=16, in_channels=3, image_size=64)
    assert _first_conv(model).in_channels == 3


def test_registry_and_bad_names() -> None:
    assert set(BACKBONES) == {"tiny_cnn", "alexnet", "resnet50", "vit_b_16"}
    with pytest.raises(ValueError, match=r"Unknown backbone 'vgg'.*alexnet"):
        build_model("vgg", num_classes=16, in_channels=1)
    with pytest.raises(ValueError, match="divisible by 16"):
        build_model("vit_b_16", num_classes=16, in_channels=1, image_size=100)
    with pytest.raises(ValueError, match="at least 63 px"):
        build_model("alexnet", num_classes=16, in_channels=1, image_size=32)


def test_rgb_checkpoint_is_adapted_to_grayscale_and_head_skipped(tmp_path: Path) -> None:
    torch.manual_seed(1)
    rgb = build_model("tiny_cnn", num_classes=1000, in_channels=3)
    path = tmp_path / "tiny_rgb.pth"
    torch.save({"state_dict": rgb.state_dict()}, path)

    gray = build_model("tiny_cnn", num_classes=16, in_channels=1)
    head_before = gray[-1].weight.detach().clone()
    report = load_pretrained(gray, path, first_conv_key=BACKBONES["tiny_cnn"].first_conv_key)

    source = rgb.state_dict()
    target = gray.state_dict()
    assert torch.equal(target["0.0.weight"], source["0.0.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(target["1.0.weight"], source["1.0.weight"])
    assert torch.equal(target["0.1.running_mean"], source["0.1.running_mean"])
    assert torch.equal(gray[-1].weight, head_before)  # 1000-class head skipped, 16-class head untouched
    assert report.adapted == ("0.0.weight",)
    assert set(report.skipped) == {"7.weight", "7.bias"}
    assert set(report.missing) == {"7.weight", "7.bias"}


def test_build_model_loads_the_configured_file(tmp_path: Path) -> None:
    source = build_model("tiny_cnn", num_classes=16, in_channels=1)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    loaded = build_model("tiny_cnn", num_classes=16, in_channels=1, pretrained_weights=path)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_missing_weights_file_says_no_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pretrained_weights"):
        build_model("tiny_cnn", num_classes=16, in_channels=1, pretrained_weights=tmp_path / "absent.pth")


def test_weights_of_another_architecture_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ValueError, match="different architecture"):
        build_model("tiny_cnn", num_classes=16, in_channels=1, pretrained_weights=path)
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="state dict"):
        build_model("tiny_cnn", num_classes=16, in_channels=1, pretrained_weights=path)


def test_vit_checkpoint_made_at_224_px_is_resampled_to_the_configured_size(tmp_path: Path) -> None:
    from torchvision.models.vision_transformer import interpolate_embeddings

    torch.manual_seed(2)
    at_224 = {  # the two tensors of a ViT-B/16 ImageNet checkpoint that depend on the input
        "encoder.pos_embedding": torch.randn(1, 14 * 14 + 1, 768),
        "conv_proj.weight": torch.randn(768, 3, 16, 16),
    }
    path = tmp_path / "vit_b_16_part.pth"
    torch.save(at_224, path)
    model = build_model("vit_b_16", num_classes=16, in_channels=1, image_size=64, pretrained_weights=path)

    loaded = model.state_dict()["encoder.pos_embedding"]
    assert loaded.shape == (1, 4 * 4 + 1, 768)
    assert torch.equal(loaded[:, :1], at_224["encoder.pos_embedding"][:, :1])  # the class token is kept as is
    expected = interpolate_embeddings(64, 16, dict(at_224))["encoder.pos_embedding"]
    assert torch.equal(loaded, expected)
    report = load_pretrained(
        model, path, first_conv_key=BACKBONES["vit_b_16"].first_conv_key,
        prepare=lambda state: resample_vit_positions(state, 64),
    )  # fmt: skip
    assert set(report.adapted) == {"encoder.pos_embedding", "conv_proj.weight"} and not report.skipped
