"""Fine-tuning: per-group LRs (head first, backbone scale, layer decay) through the finder and OneCycle; freezing."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from traenslenzor.doc_classifier.config import FinetuneConfig, ModuleConfig
from traenslenzor.doc_classifier.models.backbones import build_model
from traenslenzor.doc_classifier.training.finetune import head_names, lr_scales, parameter_groups
from traenslenzor.doc_classifier.training.module import DocClassifier
from traenslenzor.tuner import Tuner


def _module(backbone: str = "tiny_cnn", **finetune: Any) -> DocClassifier:
    config = ModuleConfig(
        backbone=backbone, num_classes=4, dropout=0.0, finetune=finetune,
        optimizer={"learning_rate": 1e-3}, scheduler={"name": "onecycle", "div_factor": 10.0},
    )  # fmt: skip
    return DocClassifier(config, image_size=32, max_lr=3e-3)


def _loader(n: int = 32) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 1, 32, 32, generator=generator), torch.arange(n) % 4), batch_size=8)


def _trainer(**kwargs: Any) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, **kwargs,
    )  # fmt: skip


def test_head_first_backbone_at_its_scale_weight_decay_split_in_each() -> None:
    model = build_model("tiny_cnn", num_classes=4, in_channels=1)
    groups = parameter_groups("tiny_cnn", model, FinetuneConfig(backbone_lr_scale=0.1), 0.05, 2e-3)
    head = dict(model.named_parameters())
    assert [id(p) for p in groups[0]["params"]] == [id(head["7.weight"])]  # the head's weights lead
    assert [(g["lr_scale"], g["weight_decay"]) for g in groups] == [(1.0, 0.05), (1.0, 0.0), (0.1, 0.05), (0.1, 0.0)]
    assert [g["lr"] for g in groups] == pytest.approx([2e-3, 2e-3, 2e-4, 2e-4])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_layer_decay_on_the_registry_stages_and_on_timm_layers() -> None:
    tiny = build_model("tiny_cnn", num_classes=4, in_channels=1)
    scales = lr_scales("tiny_cnn", tiny, FinetuneConfig(backbone_lr_scale=0.5, layer_decay=0.5))
    assert [scales[f"{block}.0.weight"] for block in range(4)] == [0.0625, 0.125, 0.25, 0.5]  # 0.5 x 0.5 ** depth
    assert scales["7.weight"] == 1.0
    vit = build_model("timm/test_vit", num_classes=4, in_channels=1, image_size=32)
    scales = lr_scales("timm/test_vit", vit, FinetuneConfig(layer_decay=0.75))
    assert head_names("timm/test_vit", vit) == ("head",) and scales["head.weight"] == 1.0
    blocks = sorted({int(n.split(".")[1]) for n in scales if n.startswith("blocks.")})
    per_block = [scales[f"blocks.{b}.attn.qkv.weight"] for b in blocks]
    assert per_block == sorted(per_block) and per_block[-1] == 1.0 > per_block[0]  # deeper = closer to the head
    assert scales["patch_embed.proj.weight"] < per_block[0]


def test_onecycle_has_one_max_lr_per_group_at_the_same_ratios() -> None:
    module = _module(backbone_lr_scale=0.1)
    trainer = _trainer(max_epochs=1)
    trainer.fit(module, train_dataloaders=_loader())
    groups = trainer.optimizers[0].param_groups
    assert [g["max_lr"] for g in groups] == pytest.approx([3e-3, 3e-3, 3e-4, 3e-4])


def test_the_lr_finder_sweeps_the_head_lr_and_keeps_the_backbone_ratio() -> None:
    module = _module(backbone_lr_scale=0.1, layer_decay=0.5)
    seen: list[list[float]] = []
    module.on_before_optimizer_step = lambda optimizer: seen.append([g["lr"] for g in optimizer.param_groups])
    result = Tuner(_trainer(max_epochs=100)).lr_find(module, train_dataloaders=_loader(), num_training=8)
    assert result is not None and len(seen) >= 8
    first, last = seen[0], seen[-1]
    assert last[0] > 100 * first[0]  # the sweep moved the head's LR ...
    for lrs in (first, last):  # ... and every group kept its ratio to it
        assert [lr / lrs[0] for lr in lrs] == pytest.approx([g["lr_scale"] for g in parameter_groups(
            "tiny_cnn", module.model, module.config.finetune, 0.01, 1.0)])  # fmt: skip


@pytest.mark.parametrize("train_bn", [True, False])
def test_a_frozen_backbone_does_not_move_and_its_batchnorm_trains_only_with_train_bn(train_bn: bool) -> None:
    module = _module(train_bn=train_bn, freeze_epochs=1)
    frozen = module.set_backbone_frozen(True)
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    _trainer(max_epochs=1).fit(module, train_dataloaders=_loader())
    after = module.model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k]) and not k.endswith("num_batches_tracked")}
    conv_weights = {f"{block}.0.weight" for block in range(4)}
    bn_stats = {f"{block}.1.running_mean" for block in range(4)}
    assert {"7.weight", "7.bias"} <= moved and not conv_weights & moved
    assert (bn_stats <= moved) is train_bn and (bool(bn_stats & moved)) is train_bn
    assert frozen == (4 if train_bn else 12)  # 4 conv weights (+ 4 BN scales and 4 shifts without train_bn)
    module.set_backbone_frozen(False)
    assert all(p.requires_grad for p in module.model.parameters())


def test_the_whole_model_phase_carries_the_heads_optimizer_state_and_starts_the_backbone_fresh() -> None:
    from traenslenzor.doc_classifier.training.finetune import CarryHeadState

    module, carry = _module(freeze_epochs=1), CarryHeadState()
    module.set_backbone_frozen(True)
    _trainer(max_epochs=1, callbacks=[carry]).fit(module, train_dataloaders=_loader())  # 4 steps
    module.set_backbone_frozen(False)
    trainer = _trainer(max_epochs=1, callbacks=[carry])
    trainer.fit(module, train_dataloaders=_loader())  # 4 more
    state, params = trainer.optimizers[0].state, dict(module.model.named_parameters())
    assert float(state[params["7.weight"]]["step"]) == 8
    assert float(state[params["0.0.weight"]]["step"]) == 4


@pytest.mark.parametrize(
    ("backbone", "stem", "top"),
    [("resnet50", "conv1.weight", "layer4.2.conv3.weight"), ("alexnet", "features.0.weight", "classifier.4.weight")],
)
def test_torchvision_stages_decay_from_the_top_down(backbone: str, stem: str, top: str) -> None:
    model = build_model(backbone, num_classes=4, in_channels=1, dropout=0.1, image_size=64)
    scales = lr_scales(backbone, model, FinetuneConfig(layer_decay=0.5))
    head = {n: s for n, s in scales.items() if n.startswith(head_names(backbone, model))}
    assert head and set(head.values()) == {1.0}
    assert scales[top] == 1.0 and scales[stem] == min(scales.values()) == 0.5 ** (4 if backbone == "resnet50" else 6)
