"""Freeze, then unfreeze, through the CLI: an LR found for each phase, logged, plotted, recorded, reused."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from traenslenzor.doc_classifier.cli import main

REPO = Path(__file__).resolve().parents[3]
SHRINK = [
    "--datamodule_config.image_size=32",
    "--datamodule_config.synthetic_train_size=64",
    "--datamodule_config.synthetic_val_size=16",
    "--datamodule_config.synthetic_test_size=16",
    "--datamodule_config.batch_size=16",
    "--trainer_config.max_epochs=2",
    "--trainer_config.enable_progress_bar=false",
    "--trainer_config.cpu_threads=1",
    "--tuner_config.num_training=20",
    "--module_config.finetune.freeze_epochs=1",
    "--module_config.finetune.backbone_lr_scale=0.1",
]


def _config(folder: Path) -> str:
    shutil.copy(REPO / ".configs/quickstart.toml", folder / "exp.toml")
    return str(folder / "exp.toml")


def test_two_phases_find_log_plot_record_and_reuse_an_lr_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    assert main(["--config_path", _config(tmp_path), "--tune-learning-rate", *SHRINK]) == 0
    lines = [r.getMessage() for r in caplog.records]
    head = next(line for line in lines if "✓ Suggested learning rate (head, backbone frozen): " in line)
    whole = next(line for line in lines if "✓ Suggested learning rate (whole model): " in line)
    assert lines.index(head) < lines.index(next(x for x in lines if "Phase 2 of 2" in x)) < lines.index(whole)
    assert (tmp_path / ".logs/lr_finder_plot_head.png").is_file() and (tmp_path / ".logs/lr_finder_plot.png").is_file()
    record = json.loads((tmp_path / ".logs/tuning_results.json").read_text())
    head_lr, whole_lr = record["learning_rate_head"]["values"], record["learning_rate"]["values"]
    assert whole_lr["lowest_group_learning_rate"] == pytest.approx(0.1 * whole_lr["learning_rate"])
    assert record["learning_rate"]["fingerprint"]["phase"]["head_learning_rate"] == head_lr["learning_rate"]
    # The second phase's optimizer, as training reads it: the backbone at 0.1 x the head, OneCycle's peaks too.
    effective = [line for line in lines if "param groups, head LR now=" in line][-1]
    assert "(0.1 x head)" in effective
    peak = float(re.search(r"lowest group OneCycle max_lr=([0-9.e-]+)", effective).group(1))
    assert peak == pytest.approx(0.1 * 3 * whole_lr["learning_rate"], rel=1e-5)

    caplog.clear()
    assert main(["--config_path", _config(tmp_path), "--tune-learning-rate", *SHRINK]) == 0
    lines = [r.getMessage() for r in caplog.records]
    assert sum("✓ Reusing learning rate (head, backbone frozen)" in line for line in lines) == 1
    assert sum("✓ Reusing learning rate (whole model)" in line for line in lines) == 1


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--tune-only"], "cannot be tuned without training"),
        (["--trainer_config.devices=2", "--trainer_config.strategy=ddp"], "runs in one process"),
        (["--trainer_config.max_epochs=1"], "needs trainer_config.max_epochs above it"),
    ],
)
def test_what_two_phases_cannot_do_is_one_line_before_any_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
) -> None:
    from traenslenzor.doc_classifier import experiment

    def no_data(config: object) -> None:
        raise AssertionError("the data was built before the config was checked")

    monkeypatch.setattr(experiment, "build_datamodule", no_data)
    assert main(["--config_path", _config(tmp_path), "--tune-learning-rate", *SHRINK, *flags]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert expected in line


def test_confirm_learning_rate_confirms_the_whole_model_phase_from_the_head_trained_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """--confirm-learning-rate with freeze_epochs: the head's LR is found, not confirmed; the whole model's is confirmed
    by trials that start from the head-trained weights with the backbone unfrozen and leave them as they found them,
    and the second phase trains at the LR the confirmation decided."""
    import torch

    from traenslenzor.doc_classifier.training.finetune import CarryHeadState
    from traenslenzor.doc_classifier.tuning.confirm import trials

    states: dict[str, list[dict[str, torch.Tensor]]] = {"end": [], "start": [], "trial": []}

    def snapshot(module) -> dict[str, torch.Tensor]:
        return {key: value.detach().clone() for key, value in module.state_dict().items()}

    for hook, key in (("on_train_end", "end"), ("on_train_start", "start")):
        original_hook = getattr(CarryHeadState, hook)

        def watched_hook(self, trainer, pl_module, _original=original_hook, _key=key) -> None:
            states[_key].append(snapshot(pl_module))  # each phase's fit: [head, whole]
            _original(self, trainer, pl_module)

        monkeypatch.setattr(CarryHeadState, hook, watched_hook)
    seen = []
    original_trial = trials.train_trial

    def watched_trial(config, module, datamodule, *, lr, **kwargs):
        states["trial"].append(snapshot(module))
        trainable = all(p.requires_grad for p in module.model.parameters())
        curve = original_trial(config, module, datamodule, lr=lr, **kwargs)
        peaks = [group["max_lr"] for group in module.trainer.optimizers[0].param_groups]
        seen.append((lr, trainable, peaks))
        return curve

    monkeypatch.setattr(trials, "train_trial", watched_trial)
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    # 160 pages at 8 a batch: 20 steps a phase; the whole model's 20 planned steps at budget 1.0: 2 x 10-step trials.
    sizes = ["--datamodule_config.synthetic_train_size=160", "--datamodule_config.batch_size=8"]
    confirm = ["--confirm-learning-rate", "--tuner_config.confirm_budget=1.0", "--tuner_config.confirm_candidates=2"]
    assert main(["--config_path", _config(tmp_path), "--tune-learning-rate", *SHRINK, *sizes, *confirm]) == 0
    lines = [r.getMessage() for r in caplog.records]

    def index(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    # One confirmation, of the whole model's LR: after its finder, before the second phase trains.
    confirming = [i for i, line in enumerate(lines) if "Confirming the learning rate" in line]
    verdicts = [
        i for i, line in enumerate(lines) if "✓ Confirmed learning rate: " in line or "not decided, keeping" in line
    ]
    assert len(confirming) == len(verdicts) == 1
    phase2 = index("Phase 2 of 2")
    assert index("✓ Suggested learning rate (head, backbone frozen): ") < phase2
    assert phase2 < index("✓ Suggested learning rate (whole model): ") < confirming[0] < verdicts[0]
    assert (tmp_path / ".logs/lr_confirm_plot.png").is_file() and (tmp_path / ".logs/lr_confirm.db").is_file()
    record = json.loads((tmp_path / ".logs/tuning_results.json").read_text())
    head_lr, whole_lr = record["learning_rate_head"]["values"], record["learning_rate"]["values"]
    confirmed = record["lr_confirm"]["values"]
    assert confirmed["suggestion"] == whole_lr["learning_rate"] != head_lr["learning_rate"]
    assert confirmed["trials"] == 2 and confirmed["steps"] == 20
    assert confirmed["decided"] or confirmed["learning_rate"] == confirmed["suggestion"]  # not decided: the finder's
    # The confirmation's triggers hold the whole model's start, as its LR's do.
    assert record["lr_confirm"]["fingerprint"]["phase"] == record["learning_rate"]["fingerprint"]["phase"]
    assert record["lr_confirm"]["fingerprint"]["phase"]["head_learning_rate"] == head_lr["learning_rate"]

    # Trials: from the head-trained weights, the backbone unfrozen, OneCycle's peaks at the groups' ratios (0.1).
    head_end, whole_start = states["end"][0], states["start"][1]
    assert any(not torch.equal(head_end[k], states["start"][0][k]) for k in head_end)  # the head phase trained
    assert len(states["trial"]) == 2
    for start in states["trial"]:
        assert all(torch.equal(start[k], head_end[k]) for k in head_end)
    for lr, trainable, peaks in seen:
        assert trainable
        assert peaks[0] == pytest.approx(3 * lr) and min(peaks) == pytest.approx(0.1 * 3 * lr)
    # ... and left the model as they found it: the second phase starts from the head-trained weights.
    assert all(torch.equal(whole_start[k], head_end[k]) for k in head_end)

    # The second phase trains at the confirmation's LR (the finder's when not decided), the backbone at 0.1 x it.
    effective = [line for line in lines if "In effect: batch_size=" in line][-1]
    used = float(re.search(r"learning_rate=([0-9.e-]+)", effective).group(1))
    assert used == pytest.approx(confirmed["learning_rate"], rel=1e-5)
    groups = [line for line in lines if "param groups, head LR now=" in line][-1]
    peak = float(re.search(r"lowest group OneCycle max_lr=([0-9.e-]+)", groups).group(1))
    assert peak == pytest.approx(0.1 * 3 * confirmed["learning_rate"], rel=1e-5)
