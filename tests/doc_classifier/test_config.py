"""ExperimentConfig: every shipped config validates; typos, bad values and missing data/weights fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from traenslenzor.doc_classifier.config import (
    ConfigError,
    ExperimentConfig,
    allowed_keys,
    apply_overrides,
    load_config,
    parse_override,
    validate_config,
)
from traenslenzor.doc_classifier.experiment import build_datamodule, preflight

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / ".configs").glob("*.toml"))


def test_the_four_guide_configs_exist() -> None:
    names = {path.name for path in CONFIGS}
    assert {"quickstart.toml", "alexnet_scratch.toml", "resnet50_scratch.toml", "vit_finetune.toml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, ExperimentConfig)
    assert config.module_config.in_channels == config.datamodule_config.channels
    assert config.tuner_config.max_lr_factor == 3.0  # the guide's "~3x the base LR"


def test_quickstart_is_synthetic_small_and_tiny() -> None:
    config = load_config(REPO / ".configs/quickstart.toml")
    assert config.datamodule_config.source == "synthetic"
    assert config.datamodule_config.image_size <= 96
    assert config.module_config.backbone == "tiny_cnn"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_misspelled_key_names_file_key_and_allowed_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "[trainer_config]\nmax_epoch = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "'trainer_config.max_epoch'" in message
    assert "max_epochs" in message and "accumulate_grad_batches" in message


def test_misspelled_nested_key_lists_that_sections_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "[module_config.optimizer]\nlearnig_rate = 0.1\n")
    with pytest.raises(ConfigError, match=r"module_config\.optimizer\.learnig_rate") as info:
        load_config(path)
    assert "learning_rate, momentum, name" in str(info.value)


def test_unknown_top_level_key_and_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'seeed'.*top level"):
        load_config(_write(tmp_path, "seeed = 1\n"))
    with pytest.raises(ConfigError, match=r"unknown key 'tuner'.*tuner_config"):
        load_config(_write(tmp_path, "[tuner]\nmax_val = 4\n"))


def test_misspelled_override_names_the_override(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    with pytest.raises(ConfigError, match=r"command-line override 'trainer_config.max_epoch=3'"):
        load_config(path, ["trainer_config.max_epoch=3"])


def test_overrides_are_typed_as_toml_values() -> None:
    assert parse_override("--trainer_config.max_epochs=3") == ("trainer_config.max_epochs", 3)
    assert parse_override("module_config.optimizer.learning_rate=3e-4") == (
        "module_config.optimizer.learning_rate",
        3e-4,
    )
    assert parse_override("trainer_config.deterministic=true") == ("trainer_config.deterministic", True)
    assert parse_override("run_name=my run") == ("run_name", "my run")
    assert parse_override('run_name="x"') == ("run_name", "x")
    with pytest.raises(ConfigError, match=r"--section\.key=value"):
        parse_override("trainer_config.max_epochs")


def test_overrides_replace_file_values_and_leave_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path, "[trainer_config]\nmax_epochs = 7\nlog_every_n_steps = 5\n")
    config = load_config(path, ["trainer_config.max_epochs=3", "datamodule_config.batch_size=64"])
    assert config.trainer_config.max_epochs == 3
    assert config.trainer_config.log_every_n_steps == 5
    assert config.datamodule_config.batch_size == 64
    data = {"a": {"b": 1}}
    new, origin = apply_overrides(data, ["a.c=2"])
    assert data == {"a": {"b": 1}} and new == {"a": {"b": 1, "c": 2}} and origin == {"a.c": "a.c=2"}
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides(data, ["a.b.c=1"])


def test_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match=r"trainer_config\.max_epochs.*-5"):
        validate_config({"trainer_config": {"max_epochs": -5}})
    with pytest.raises(ConfigError, match=r"min_lr=1.0 must be smaller than max_lr=0.1"):
        validate_config({"tuner_config": {"min_lr": 1.0, "max_lr": 0.1}})
    with pytest.raises(ConfigError, match=r"suggestion_method.*unknown suggestion rule 'valey'.*'valley'"):
        validate_config({"tuner_config": {"suggestion_method": "valey"}})
    assert validate_config({"tuner_config": {"suggestion_method": "valley"}}).tuner_config.suggestion_method == "valley"
    with pytest.raises(ConfigError, match=r"in_channels \(3\) must equal datamodule_config.channels \(1\)"):
        validate_config({"module_config": {"in_channels": 3}})


def test_missing_config_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Config file not found"):
        load_config(tmp_path / "nope.toml")


def test_pretrained_without_weights_is_a_config_error_only_where_no_library_has_weights() -> None:
    with pytest.raises(ConfigError, match="pretrained_weights") as info:
        validate_config({"module_config": {"backbone": "tiny_cnn", "pretrained": True}})
    assert "no library publishes its weights" in str(info.value)
    config = validate_config({"module_config": {"backbone": "vit_b_16", "pretrained": True}})
    assert config.module_config.pretrained_weights is None  # torchvision's own weights (pretrained_weights.py)


def test_pretrained_weights_file_missing_fails_before_any_work(tmp_path: Path) -> None:
    missing = tmp_path / "vit_b_16.pth"
    config = validate_config({"module_config": {"pretrained": True, "pretrained_weights": str(missing)}})
    with pytest.raises(ConfigError, match="file not found"):
        preflight(config, tune_learning_rate=True)


def test_rvl_cdip_without_root_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a dataset folder"):
        validate_config({"datamodule_config": {"source": "rvl_cdip"}})


def test_missing_rvl_cdip_folder_says_where_it_looked(tmp_path: Path) -> None:
    root = tmp_path / "rvl-cdip"
    config = validate_config({"datamodule_config": {"source": "rvl_cdip", "root": str(root)}})
    with pytest.raises(FileNotFoundError) as info:
        build_datamodule(config)
    assert str(root) in str(info.value)


def test_onecycle_peak_is_configured_or_factor_times_lr() -> None:
    config = validate_config({"module_config": {"optimizer": {"learning_rate": 0.002}}})
    assert config.onecycle_max_lr() == pytest.approx(0.006)
    config = validate_config({"module_config": {"scheduler": {"max_lr": 0.01}}})
    assert config.onecycle_max_lr() == 0.01
    assert config.onecycle_max_lr(0.004) == pytest.approx(0.012)  # a tuned LR wins
    config = validate_config({"module_config": {"scheduler": {"name": "none"}}})
    assert config.onecycle_max_lr(0.004) is None


@pytest.mark.parametrize(("stage", "method"), [("train", "fit"), ("val", "validate"), ("test", "test")])
def test_each_stage_names_its_trainer_method(stage: str, method: str) -> None:
    assert validate_config({"stage": stage}).lightning_method == method


def test_early_stop_threshold_can_be_switched_off_in_toml(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, '[tuner_config]\nearly_stop_threshold = "none"\n'))
    assert config.tuner_config.early_stop_threshold is None
    assert config.tuner_config.results_path == Path(".logs/tuning_results.json")


def test_allowed_keys_walks_nested_sections() -> None:
    assert "max_lr" in allowed_keys(["module_config", "scheduler"])
    assert allowed_keys(["seed"]) == []


def test_missing_checkpoint_fails_before_any_work_and_says_where_they_are(tmp_path: Path) -> None:
    config = validate_config({"stage": "test", "ckpt_path": str(tmp_path / "nope.ckpt")})
    with pytest.raises(ConfigError, match=r"nope\.ckpt.*not found.*checkpoints/\) or remove ckpt_path"):
        preflight(config, tune_learning_rate=False)


def _config_keys(model: type = ExperimentConfig, prefix: str = "") -> list[str]:
    """Every dotted leaf key the config accepts, e.g. ``trainer_config.checkpoint.monitor``."""
    from pydantic import BaseModel

    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _config_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _reference_table_keys(text: str) -> set[str]:
    """Names in the first column of the key tables (``| `a`, `b` | default | meaning |``)."""
    import re

    rows = re.findall(r"^\| ([^|]*`[^|]*) \| [^|]* \| [^|]* \|$", text, re.MULTILINE)
    return {name for cell in rows for name in re.findall(r"`([a-z_0-9]+)`", cell)}


def test_docs_list_every_config_key_and_no_other() -> None:
    cli = (REPO / "docs/cli.md").read_text(encoding="utf-8").split("## Config reference", 1)[1]
    cli = cli.split("\n## ", 1)[0]
    data = (REPO / "docs/data.md").read_text(encoding="utf-8")
    keys = _config_keys()
    undocumented = [
        key
        for key in keys
        if f"`{key.rsplit('.', 1)[-1]}`" not in (data if key.startswith("datamodule_config.") else cli)
    ]
    assert undocumented == []
    leaves = {key.rsplit(".", 1)[-1] for key in keys}
    assert _reference_table_keys(cli) | _reference_table_keys(data) <= leaves


def test_eval_batch_search_with_a_pinned_eval_batch_size_fails_before_any_work() -> None:
    config = validate_config({"stage": "val", "datamodule_config": {"eval_batch_size": 16}})
    with pytest.raises(ConfigError, match="eval_batch_size = 16 pins it; remove eval_batch_size"):
        preflight(config, tune_learning_rate=False, tune_batch_size=True)
    preflight(config, tune_learning_rate=False)  # no search: the pinned size is fine
    preflight(
        validate_config({"datamodule_config": {"eval_batch_size": 16}}), tune_learning_rate=False, tune_batch_size=True
    )  # stage train searches the training batch, which eval_batch_size leaves alone


def test_tuner_config_defaults_are_the_tuners() -> None:
    from traenslenzor.tuner import BatchSearchSettings, SweepSettings

    tc, batch, sweep = validate_config({}).tuner_config, BatchSearchSettings(), SweepSettings()
    assert (tc.batch_size_mode, tc.init_val, tc.max_trials, tc.steps_per_trial, tc.margin, tc.max_val) == (
        batch.mode,
        batch.init_val,
        batch.max_trials,
        batch.steps_per_trial,
        batch.margin,
        batch.max_val,
    )
    assert tc.max_memory == batch.max_memory
    assert (tc.min_lr, tc.max_lr, tc.num_training, tc.lr_mode, tc.early_stop_threshold) == (
        sweep.min_lr,
        sweep.max_lr,
        sweep.num_training,
        sweep.mode,
        sweep.early_stop_threshold,
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tuner_config.min_lr=1.0", r"tuner_config: min_lr=1\.0 must be smaller than max_lr=0\.1"),
        ("tuner_config.max_memory=1", r"max_memory=1 is an int, read as bytes.*a float \(1\.0 = all of it"),
        ("tuner_config.max_memory=1.5", r"a float is a fraction of the device's memory"),
        ("tuner_config.init_val=0", r"init_val must be an integer >= 1"),
        ("tuner_config.max_val=1", r"max_val must be an integer >= init_val=2"),
        ("tuner_config.margin=1.0", r"margin must lie in \[0, 1\)"),
        ("tuner_config.num_training=1", r"num_training=1: the range test needs an integer of at least 2"),
        (
            "trainer_config.max_epochs=-1",
            r"max_epochs = -1 \(no limit\) with .*'onecycle'.*set max_epochs or max_steps",
        ),
    ],
)
def test_what_the_tuner_would_refuse_is_one_line_at_load(override: str, message: str) -> None:
    """The tuner's own checks run when the config loads: one line, the message alone (no dump of the section)."""
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(REPO / ".configs/quickstart.toml", [override, "tuner_config.max_lr=0.1"])
    assert "\n" not in str(caught.value) and "{" not in str(caught.value)


def test_an_endless_run_is_fine_without_onecycle_or_with_max_steps() -> None:
    quickstart = REPO / ".configs/quickstart.toml"
    assert load_config(quickstart, ["trainer_config.max_epochs=-1", "trainer_config.max_steps=100"])
    assert load_config(quickstart, ["trainer_config.max_epochs=-1", "module_config.scheduler.name=none"])
    assert load_config(quickstart, ["tuner_config.max_memory=1.0"]).tuner_config.max_memory == 1.0
    assert load_config(quickstart, ["tuner_config.max_memory=1048576"]).tuner_config.max_memory == 2**20


def test_backbone_names_are_the_model_tables() -> None:
    from traenslenzor.doc_classifier.models.backbones import BACKBONES

    for name in BACKBONES:
        assert validate_config({"module_config": {"backbone": name}}).module_config.backbone == name
    with pytest.raises(ConfigError, match=r"module_config\.backbone.*unknown backbone 'vgg'; choose one of tiny_cnn"):
        validate_config({"module_config": {"backbone": "vgg"}})
