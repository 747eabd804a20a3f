"""Pretrained weights: timm models by name, the libraries' caches, this app's own checkpoints; never a download."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from traenslenzor.doc_classifier.cli import main
from traenslenzor.doc_classifier.config import ModuleConfig
from traenslenzor.doc_classifier.models import backbones as models
from traenslenzor.doc_classifier.models.backbones import build_model
from traenslenzor.doc_classifier.models.pretrained_weights import WeightsUnavailable, check_library_weights
from traenslenzor.doc_classifier.training.module import DocClassifier

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline, with empty Hugging Face and torch caches under ``tmp_path``; a download attempt fails the test."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    torch_home = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch"))

    def no_download(url: str, *args: object, **kwargs: object) -> None:
        raise OSError(f"<urlopen error [Errno -2] Name or service not known> ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    yield tmp_path
    torch.hub.set_dir(torch_home)


@pytest.mark.parametrize(
    ("backbone", "image_size"),
    [("timm/test_resnet", 32), ("timm/test_convnext", 32), ("timm/test_vit", 32), ("timm/test_vit", 48)],
)
def test_timm_backbones_take_classes_channels_dropout_and_image_size(backbone: str, image_size: int) -> None:
    model = build_model(backbone, num_classes=5, in_channels=1, dropout=0.25, image_size=image_size).eval()
    assert model(torch.zeros(2, 1, image_size, image_size)).shape == (2, 5)
    dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert 0.25 in dropouts or model.__dict__.get("drop_rate") == 0.25  # timm's drop_rate, as a module or a call
    if "vit" in backbone:
        assert model.patch_embed.img_size == (image_size, image_size)  # the ViT's position grid at this size


def test_a_timm_name_is_checked_when_the_config_loads() -> None:
    assert ModuleConfig(backbone="timm/resnet18.a1_in1k").backbone == "timm/resnet18.a1_in1k"  # a pretrained tag
    with pytest.raises(ValueError, match=r"timm has no model 'resnet181'.*did you mean timm/resnet18"):
        ModuleConfig(backbone="timm/resnet181")


def test_tiny_cnn_pretrained_needs_a_file() -> None:
    with pytest.raises(ValueError, match=r"tiny_cnn.*pretrained_weights"):
        ModuleConfig(backbone="tiny_cnn", pretrained=True)


def _fake_hub_snapshot(cache: Path, repo: str, state: dict[str, torch.Tensor]) -> Path:
    """A Hugging Face cache entry for ``repo`` holding ``state`` as model.safetensors (what a download leaves)."""
    from safetensors.torch import save_file

    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, snapshot / "model.safetensors")
    return snapshot / "model.safetensors"


def test_timm_weights_come_from_the_hub_cache_with_the_stem_adapted(empty_caches: Path) -> None:
    import timm

    published = timm.create_model("test_resnet", num_classes=1000, in_chans=3).state_dict()
    cached = _fake_hub_snapshot(empty_caches / "hf", "timm/test_resnet.r160_in1k", published)
    assert check_library_weights("timm/test_resnet.r160_in1k", None) == cached
    model = build_model("timm/test_resnet.r160_in1k", num_classes=4, in_channels=1, pretrained=True)
    stem = model.pretrained_cfg["first_conv"] + ".weight"
    torch.testing.assert_close(model.state_dict()[stem], published[stem].sum(dim=1, keepdim=True))  # timm's in_chans
    assert model.get_classifier().out_features == 4  # the 1000-class head is not loaded


def test_offline_with_nothing_cached_is_one_line_naming_the_cache(empty_caches: Path) -> None:
    with pytest.raises(WeightsUnavailable) as timm_info:
        check_library_weights("timm/test_resnet.r160_in1k", None)
    message = str(timm_info.value)
    assert "\n" not in message and str(empty_caches / "hf") in message and "hf-hub:timm/test_resnet" in message
    with pytest.raises(WeightsUnavailable) as tv_info:
        check_library_weights("resnet50", "resnet50")
    assert str(empty_caches / "torch" / "checkpoints") in str(tv_info.value)
    assert "ResNet50_Weights" in str(tv_info.value)


def test_cli_offline_exits_2_in_one_line_before_any_data(
    empty_caches: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from traenslenzor.doc_classifier import experiment

    def no_data(config: object) -> None:
        raise AssertionError("the data was built before the weights were checked")

    monkeypatch.setattr(experiment, "build_datamodule", no_data)
    monkeypatch.chdir(empty_caches)
    args = ["--config_path", str(REPO / ".configs/quickstart.toml"), "--module_config.backbone=timm/test_resnet"]
    assert main([*args, "--module_config.pretrained=true", "--tune-learning-rate"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no weights for timm/test_resnet in" in line and "pretrained_weights" in line


def test_torchvision_weights_go_through_its_enum_and_are_adapted(monkeypatch: pytest.MonkeyPatch) -> None:
    published = models.build_resnet50(1000, 3, 0.0, 224).state_dict()
    asked = []

    def enum_weights(name: str) -> tuple[dict[str, torch.Tensor], str]:
        asked.append(name)
        return published, "torchvision ResNet50_Weights.IMAGENET1K_V2"

    monkeypatch.setattr(models, "torchvision_state_dict", enum_weights)
    model = build_model("resnet50", num_classes=16, in_channels=1, pretrained=True)
    assert asked == ["resnet50"]
    torch.testing.assert_close(model.conv1.weight, published["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.layer4[0].conv1.weight, published["layer4.0.conv1.weight"])
    assert model.fc.out_features == 16


def test_this_apps_own_checkpoint_is_a_pretrained_start(tmp_path: Path) -> None:
    config = ModuleConfig(backbone="tiny_cnn", num_classes=4, scheduler={"name": "none"})
    trained = DocClassifier(config, image_size=16)
    images, labels = torch.randn(16, 1, 16, 16), torch.arange(16) % 4
    trainer = L.Trainer(
        accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(trained, train_dataloaders=DataLoader(TensorDataset(images, labels), batch_size=8))
    path = tmp_path / "epoch000.ckpt"
    trainer.save_checkpoint(path)
    loaded = build_model("tiny_cnn", num_classes=4, in_channels=1, pretrained=True, pretrained_weights=path)
    for name, tensor in trained.model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
