"""The tuning workflow on a fake tuner: what it passes down, what it reuses from the record, how the LR follows the
batch, and that the saved plot shows what the run applied. No search runs here; ``test_cli.py`` runs real ones."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest

from traenslenzor.doc_classifier.config import load_config
from traenslenzor.doc_classifier.experiment import build_module
from traenslenzor.doc_classifier.tuning import record, steps, workflow
from traenslenzor.doc_classifier.tuning.batch_plan import BatchPlan, plan_batch, rescale_for_batch
from traenslenzor.tuner import DEFAULT_RULE_VERSION, DEFAULT_SUGGESTION, SUGGESTIONS, LRFinderResult

REPO = Path(__file__).resolve().parents[3]
RECORD = Path(".logs/tuning_results.json")


def _curve() -> LRFinderResult:
    """A smooth range test (flat, falling, then blowing up) on which the rules suggest different LRs."""
    lrs = np.logspace(-6, 0, 100)
    x = np.log10(lrs)
    loss = 2.5 - 1.5 / (1 + np.exp(-(x + 3) * 2.5)) + np.where(x > -1.2, (x + 1.2) ** 2 * 3, 0)
    return LRFinderResult(
        lrs=tuple(lrs), losses=tuple(loss), raw_losses=tuple(loss), min_lr=1e-6, max_lr=1.0, num_training=100
    )


class _FakeResult:
    """An LR result with a fixed suggestion (and the methods the workflow calls)."""

    def __init__(self, suggestion: float) -> None:
        self._suggestion = suggestion

    def suggestion(self, method: str | None = None) -> float:
        return self._suggestion

    def diagnostics(self, method: str | None = None) -> list[Any]:
        return []

    def to_dict(self) -> dict[str, Any]:
        return {"suggestion": self._suggestion}

    def plot(self, suggest: bool = True, show: bool = False, ax: Any = None, method: str | None = None) -> Any:
        from matplotlib import pyplot as plt

        return plt.figure()


class _FakeTuner:
    """Finds ``found`` as batch size and ``lr`` as LR; logs every call with the trainer's accumulation."""

    calls: ClassVar[list[tuple[str, int]]] = []
    found: ClassVar[int] = 64
    lr: ClassVar[Any] = 3.16e-3

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.batch_size_result = SimpleNamespace(to_dict=lambda: {"trials": []})

    def scale_batch_size(self, model: Any, *, datamodule: Any, **kwargs: Any) -> int:
        self.calls.append(("scale_batch_size", self.trainer.accumulate_grad_batches))
        datamodule.hparams.batch_size = self.found
        return self.found

    def lr_find(self, model: Any, **kwargs: Any) -> Any:
        self.calls.append(("lr_find", self.trainer.accumulate_grad_batches))
        return self.lr if isinstance(self.lr, LRFinderResult) else _FakeResult(self.lr)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> type[_FakeTuner]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(steps, "Tuner", _FakeTuner)
    monkeypatch.setattr(_FakeTuner, "calls", [])
    return _FakeTuner


def _tune(*overrides: str, batch: bool = True, lr: bool = True, retune: bool = False) -> tuple[Any, Any, Any]:
    """One tuning run of the quickstart config with ``overrides``; (outcome, module, datamodule)."""
    config = load_config(REPO / ".configs/quickstart.toml", list(overrides))
    module = build_module(config)
    datamodule = SimpleNamespace(hparams=SimpleNamespace(batch_size=config.datamodule_config.batch_size))
    outcome = workflow.run_tuning(config, module, datamodule, batch_size=batch, learning_rate=lr, retune=retune)
    return outcome, module, datamodule


def _tuner_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().removeprefix("[ExperimentConfig::tuner]: ") for r in caplog.records]


# --- the plot ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", sorted(SUGGESTIONS))
def test_plot_marks_the_lr_the_run_applies(fake: type[_FakeTuner], monkeypatch: pytest.MonkeyPatch, rule: str) -> None:
    """Needs ``LRFinderResult.plot(method=...)`` (the LR helper's change, issue 14.1): until it is merged, the
    plot call fails with an unexpected keyword."""
    from matplotlib import pyplot as plt

    monkeypatch.setattr(fake, "lr", _curve())
    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure: (figures.append(figure), close(figure)))
    outcome, module, _ = _tune(f"tuner_config.suggestion_method={rule}", batch=False)

    applied = module.hparams.learning_rate
    assert applied == outcome.learning_rate == _curve().suggestion(method=rule)
    (figure,) = figures
    marks = [line for ax in figure.axes for line in ax.get_lines() if line.get_color() == "red"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [pytest.approx(applied)]
    assert RECORD.with_name("lr_finder_plot.png").read_bytes()[:4] == b"\x89PNG"


# --- the record ----------------------------------------------------------------------------------------------------


def test_a_matching_record_is_reused_without_a_search(fake: type[_FakeTuner], caplog: pytest.LogCaptureFixture) -> None:
    first, _, _ = _tune()
    assert [name for name, _ in fake.calls] == ["scale_batch_size", "lr_find"]
    caplog.set_level(logging.INFO)
    fake.calls.clear()
    second, module, datamodule = _tune()
    assert fake.calls == []
    assert second.reused == ("batch_size", "learning_rate")
    assert (second.batch_size, second.learning_rate) == (first.batch_size, first.learning_rate) == (64, 3.16e-3)
    assert datamodule.hparams.batch_size == 64 and module.hparams.learning_rate == 3.16e-3
    assert module.hparams.max_lr == pytest.approx(3 * 3.16e-3)
    lines = _tuner_lines(caplog)
    reuse = [line for line in lines if line.startswith("✓ Reusing")]
    assert len(reuse) == 2 and all("none of its triggers changed" in line for line in reuse)
    assert reuse[0].startswith(f"✓ Reusing batch size 64 from {RECORD} (tuned 20")
    assert "(device, input, model, precision, stage, tuner settings)" in reuse[0]
    assert reuse[1].startswith("✓ Reusing learning rate 3.16e-03 from")


def test_a_resolution_change_re_tunes_only_the_batch_size(
    fake: type[_FakeTuner], caplog: pytest.LogCaptureFixture
) -> None:
    _tune()
    fake.calls.clear()
    caplog.set_level(logging.INFO)
    outcome, _, _ = _tune("datamodule_config.image_size=96")
    assert [name for name, _ in fake.calls] == ["scale_batch_size"]
    assert outcome.reused == ("learning_rate",)
    (line,) = [line for line in _tuner_lines(caplog) if line.startswith("Re-tuning")]
    assert line.startswith("Re-tuning the batch size: input (image_size 64 -> 96) changed since 20")


def test_an_optimizer_change_re_tunes_only_the_lr(fake: type[_FakeTuner], caplog: pytest.LogCaptureFixture) -> None:
    _tune()
    fake.calls.clear()
    caplog.set_level(logging.INFO)
    outcome, _, _ = _tune("module_config.optimizer.name=sgd")
    assert [name for name, _ in fake.calls] == ["lr_find"]
    assert outcome.reused == ("batch_size",)
    (line,) = [line for line in _tuner_lines(caplog) if line.startswith("Re-tuning")]
    assert line.startswith("Re-tuning the learning rate: optimizer (") and "name 'adamw' -> 'sgd'" in line


def _rewrite_lr_fingerprint(change: Any) -> None:
    """Edit the recorded LR entry's fingerprint in place with ``change(fingerprint)``, as another run would have
    written it."""
    data = json.loads(RECORD.read_text(encoding="utf-8"))
    change(data["learning_rate"]["fingerprint"])
    RECORD.write_text(json.dumps(data), encoding="utf-8")


_OTHER_RULE = next(rule for rule in ("stable", "valley") if rule != DEFAULT_SUGGESTION)


@pytest.mark.parametrize(
    ("written_under", "trigger"),
    [
        (
            {"name": _OTHER_RULE, "version": None},
            f"rule (name {_OTHER_RULE!r} -> {DEFAULT_SUGGESTION!r}, version None -> {DEFAULT_RULE_VERSION})",
        ),
        (
            {"name": DEFAULT_SUGGESTION, "version": DEFAULT_RULE_VERSION - 1},
            f"rule (version {DEFAULT_RULE_VERSION - 1} -> {DEFAULT_RULE_VERSION})",
        ),
    ],
    ids=["another-rule", "another-version"],
)
def test_an_lr_read_under_another_rule_is_searched_again(
    fake: type[_FakeTuner], caplog: pytest.LogCaptureFixture, written_under: dict[str, Any], trigger: str
) -> None:
    # The same suggestion_method (None: the default), but the default read the curve otherwise when it was recorded.
    _tune()
    _rewrite_lr_fingerprint(lambda fingerprint: fingerprint.update(rule=written_under))
    fake.calls.clear()
    caplog.set_level(logging.INFO)
    outcome, _, _ = _tune()
    assert [name for name, _ in fake.calls] == ["lr_find"] and outcome.reused == ("batch_size",)
    (line,) = [line for line in _tuner_lines(caplog) if line.startswith("Re-tuning")]
    assert line.startswith(f"Re-tuning the learning rate: {trigger} changed since 20")
    recorded = json.loads(RECORD.read_text(encoding="utf-8"))["learning_rate"]["fingerprint"]["rule"]
    assert recorded == {"name": DEFAULT_SUGGESTION, "version": DEFAULT_RULE_VERSION}  # the new search, today's rule


def test_a_record_from_before_the_rule_was_a_trigger_loads_and_its_lr_is_searched_again(
    fake: type[_FakeTuner], caplog: pytest.LogCaptureFixture
) -> None:
    _tune()
    _rewrite_lr_fingerprint(lambda fingerprint: fingerprint.pop("rule"))
    entries = record.load_record(RECORD)  # an old record still loads, both entries usable
    assert set(entries) == {"batch_size", "learning_rate"} and "rule" not in entries["learning_rate"].fingerprint
    fake.calls.clear()
    caplog.set_level(logging.INFO)
    outcome, _, _ = _tune()
    assert [name for name, _ in fake.calls] == ["lr_find"] and outcome.reused == ("batch_size",)
    (line,) = [line for line in _tuner_lines(caplog) if line.startswith("Re-tuning")]
    today = f"name {DEFAULT_SUGGESTION!r}, version {DEFAULT_RULE_VERSION}"
    assert line.startswith(f"Re-tuning the learning rate: rule (not recorded -> {today}) changed since 20")


def test_the_rule_trigger_names_the_rule_and_versions_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert record.rule_trigger(None) == {"name": DEFAULT_SUGGESTION, "version": DEFAULT_RULE_VERSION}
    assert record.rule_trigger(DEFAULT_SUGGESTION) == record.rule_trigger(None)  # named or by default: one rule
    assert record.rule_trigger(_OTHER_RULE) == {"name": _OTHER_RULE, "version": None}  # the version is the default's
    monkeypatch.setattr(record, "DEFAULT_RULE_VERSION", DEFAULT_RULE_VERSION + 1)
    assert record.rule_trigger(None)["version"] == DEFAULT_RULE_VERSION + 1


def test_retune_searches_again(fake: type[_FakeTuner], caplog: pytest.LogCaptureFixture) -> None:
    _tune()
    fake.calls.clear()
    outcome, _, _ = _tune(retune=True)
    assert [name for name, _ in fake.calls] == ["scale_batch_size", "lr_find"] and outcome.reused == ()


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        ('{"batch_size": {"found": 6', "it cannot be read"),
        ('{"batch_size": {"found": 64}, "learning_rate": {"suggestion": 0.1}}', "it is from an older format (None"),
        (
            '{"format": "traenslenzor.tuning_record/2", "batch_size": {"values": {}}}',
            "its 'batch_size' entry is incomplete",
        ),
        (
            '{"format": "traenslenzor.tuning_record/2", "learning_rate": {"values": {"learning_rate": 0.1},'
            ' "fingerprint": {}, "tuned_at": "2026-01-01T00:00:00+00:00"}}',
            "its 'learning_rate' entry is incomplete (KeyError: 'global_batch, weight_decay')",
        ),
    ],
    ids=["corrupt", "older-format", "incomplete", "lr-values-missing"],
)
def test_an_unreadable_or_stale_record_is_ignored_with_a_warning(
    fake: type[_FakeTuner], caplog: pytest.LogCaptureFixture, content: str, cause: str
) -> None:
    RECORD.parent.mkdir(parents=True)
    RECORD.write_text(content, encoding="utf-8")
    caplog.set_level(logging.INFO)
    outcome, _, _ = _tune()
    assert [name for name, _ in fake.calls] == ["scale_batch_size", "lr_find"] and outcome.reused == ()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"Ignoring the tuning record {RECORD}: {cause}" in warning
    assert json.loads(RECORD.read_text(encoding="utf-8"))["format"] == "traenslenzor.tuning_record/2"  # replaced


# --- the LR follows the batch --------------------------------------------------------------------------------------


def test_a_reused_lr_is_rescaled_to_a_new_batch_sqrt_for_adamw(
    fake: type[_FakeTuner], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _tune()  # 3.16e-3 found at batch 64
    monkeypatch.setattr(fake, "found", 256)  # what the smaller resolution lets fit
    caplog.set_level(logging.INFO)
    outcome, module, _ = _tune("datamodule_config.image_size=48")  # re-tunes the batch size only
    lines = _tuner_lines(caplog)
    assert "Rescaled LR for batch 64 -> 256 (sqrt rule): 3.16e-03 -> 6.32e-03" in lines
    assert outcome.learning_rate == pytest.approx(6.32e-3) == module.hparams.learning_rate  # 3.16e-3 x sqrt(4)
    assert outcome.weight_decay == pytest.approx(0.005)  # 0.01 x 3.16e-3 / 6.32e-3: lr x wd kept
    assert module.config.optimizer.weight_decay == pytest.approx(0.005)
    assert module.hparams.max_lr == pytest.approx(3 * 6.32e-3)


def test_a_reused_lr_is_rescaled_linearly_for_sgd_after_a_batch_override(
    fake: type[_FakeTuner], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "lr", 0.1)
    sgd = "module_config.optimizer.name=sgd"
    _tune(sgd, "datamodule_config.batch_size=64", batch=False)
    outcome, module, _ = _tune(sgd, "datamodule_config.batch_size=16", batch=False)
    assert outcome.reused == ("learning_rate",)
    assert outcome.learning_rate == pytest.approx(0.025)  # 0.1 x 16 / 64
    assert outcome.weight_decay is None and module.config.optimizer.weight_decay == 0.01  # SGD keeps it


def test_with_rescaling_off_a_batch_change_re_tunes_the_lr(
    fake: type[_FakeTuner], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _tune("tuner_config.rescale_lr=false")
    monkeypatch.setattr(fake, "found", 128)
    fake.calls.clear()
    caplog.set_level(logging.INFO)
    outcome, _, _ = _tune("tuner_config.rescale_lr=false", "datamodule_config.image_size=48")
    assert [name for name, _ in fake.calls] == ["scale_batch_size", "lr_find"]
    assert "Re-tuning the learning rate: the global batch changed (64 -> 128) and tuner_config.rescale_lr = false." in (
        _tuner_lines(caplog)
    )
    assert outcome.learning_rate == 3.16e-3  # found afresh, not rescaled


def test_rescale_rules_by_hand() -> None:
    adamw = rescale_for_batch(3.16e-3, 0.01, from_batch=64, to_batch=256, optimizer="adamw")
    assert (adamw.rule, adamw.learning_rate, adamw.weight_decay) == ("sqrt", pytest.approx(6.32e-3), 0.005)
    sgd = rescale_for_batch(0.1, 5e-4, from_batch=256, to_batch=64, optimizer="sgd")
    assert (sgd.rule, sgd.learning_rate, sgd.weight_decay) == ("linear", pytest.approx(0.025), 5e-4)


# --- the effective batch -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fits", "world", "effective", "plan"),
    [
        (64, 1, None, BatchPlan(64, 1, 1)),
        (64, 1, 256, BatchPlan(64, 1, 4)),  # 256 / 64 = 4 steps of 64
        (48, 1, 128, BatchPlan(43, 1, 3)),  # ceil(128 / 48) = 3 steps of ceil(128 / 3) = 43: global 129
        (32, 2, 256, BatchPlan(32, 2, 4)),  # 256 / (32 x 2) = 4
        (64, 2, 64, BatchPlan(32, 2, 1)),  # 64 would overshoot: 32 per process is the request
        (7, 1, 8, BatchPlan(4, 1, 2)),  # ceil(8 / 7) = 2 steps of 4
    ],
)
def test_accumulation_makes_up_the_effective_batch(
    fits: int, world: int, effective: int | None, plan: BatchPlan
) -> None:
    got = plan_batch(fits, world, 1, effective)
    assert got == plan
    if effective is not None:
        assert got.global_batch >= effective and got.accumulation == math.ceil(effective / (fits * world))


def test_the_lr_is_found_and_recorded_at_the_effective_batch(fake: type[_FakeTuner]) -> None:
    outcome, _, datamodule = _tune("datamodule_config.effective_batch_size=256")
    assert fake.calls == [("scale_batch_size", 1), ("lr_find", 4)]  # the LR search accumulates as training will
    assert (outcome.batch_size, outcome.accumulate_grad_batches, outcome.global_batch) == (64, 4, 256)
    assert datamodule.hparams.batch_size == 64
    values = json.loads(RECORD.read_text(encoding="utf-8"))["learning_rate"]["values"]
    assert (values["per_process_batch"], values["accumulate_grad_batches"], values["global_batch"]) == (64, 4, 256)


def test_the_config_switches_are_the_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from traenslenzor.doc_classifier import experiment

    seen = {}

    def stop(config: Any, module: Any, datamodule: Any, **flags: Any) -> None:
        seen.update(flags)
        raise KeyboardInterrupt  # enough: the flags reached the workflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(experiment, "run_tuning", stop)
    monkeypatch.setattr(experiment, "build_datamodule", lambda config: None)
    overrides = ["tuner_config.use_batch_size_tuning=true", "tuner_config.use_learning_rate_tuning=true"]
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(load_config(REPO / ".configs/quickstart.toml", overrides))
    assert seen == {"batch_size": True, "learning_rate": True, "retune": False, "confirm": False}
    # confirming the LR runs (or reuses) the LR finder first: it switches the LR tuning on
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(
            load_config(REPO / ".configs/quickstart.toml", ["tuner_config.confirm_learning_rate=true"])
        )
    assert seen == {"batch_size": False, "learning_rate": True, "retune": False, "confirm": True}


def test_save_tuned_config_writes_batch_accumulation_lr_weight_decay_and_max_lr(tmp_path: Path) -> None:
    import shutil
    import tomllib

    from traenslenzor.doc_classifier.tuning.config_writer import save_tuning

    path = tmp_path / "exp.toml"
    shutil.copy(REPO / ".configs/quickstart.toml", path)
    outcome = workflow.TuningOutcome(
        batch_size=64, accumulate_grad_batches=4, learning_rate=6.32e-3, max_lr=1.896e-2, weight_decay=0.005
    )
    assert save_tuning(path, path, outcome, load_config(path)) == path
    saved = tomllib.loads(path.read_text(encoding="utf-8"))
    assert saved["datamodule_config"]["batch_size"] == 64
    assert saved["trainer_config"]["accumulate_grad_batches"] == 4
    assert saved["module_config"]["optimizer"]["learning_rate"] == 0.00632
    assert saved["module_config"]["optimizer"]["weight_decay"] == 0.005
    assert saved["module_config"]["scheduler"]["max_lr"] == 0.019


# --- the typed steps -----------------------------------------------------------------------------------------------


def test_outcome_is_built_from_the_plan_and_the_lr_step() -> None:
    plan = BatchPlan(per_process=48, world_size=2, accumulation=3)
    batch_only = workflow.TuningOutcome.from_steps(plan, None, reused=("batch_size",))
    assert (batch_only.batch_size, batch_only.world_size, batch_only.accumulate_grad_batches) == (48, 2, 3)
    assert batch_only.global_batch == 288 and batch_only.reused == ("batch_size",)
    assert batch_only.learning_rate is batch_only.previous_learning_rate is batch_only.results_path is None
    lr = steps.LearningRateStep(1e-3, 2e-3, 6e-3, 5e-3, ".logs/p.png", ("info: fine",))
    both = workflow.TuningOutcome.from_steps(plan, lr, results_path=Path(".logs/r.json"))
    assert (both.previous_learning_rate, both.learning_rate, both.max_lr, both.weight_decay) == (1e-3, 2e-3, 6e-3, 5e-3)
    assert (both.plot_path, both.diagnostics, both.results_path) == (".logs/p.png", ("info: fine",), ".logs/r.json")


def test_a_reused_step_carries_no_new_record_entry(fake: type[_FakeTuner]) -> None:
    _tune()  # searches both and writes the record
    config = load_config(REPO / ".configs/quickstart.toml")
    module = build_module(config)
    datamodule = SimpleNamespace(hparams=SimpleNamespace(batch_size=config.datamodule_config.batch_size))
    run = steps.TuningRun(
        config,
        module,
        datamodule,
        record.load_record(RECORD),
        record.model_trigger(config.module_config.backbone, module.model),
    )
    plan = steps.batch_plan_step(run, world_size=1)
    step = steps.learning_rate_step(run, plan)
    assert step.reused and step.entry is None and step.learning_rate == module.hparams.learning_rate
    assert workflow.save_record(run, {"learning_rate": step}) is None  # nothing searched: the record is not rewritten


def test_a_wide_band_points_to_the_confirmation_unless_it_was_asked_for(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from traenslenzor.doc_classifier.tuning.steps import _point_to_confirmation

    caplog.set_level(logging.INFO)

    def lines(confirm: bool, band: tuple[float, float] | None) -> list[str]:
        caplog.clear()
        _point_to_confirmation(SimpleNamespace(tuner_config=SimpleNamespace(confirm_learning_rate=confirm)), band)
        return _tuner_lines(caplog)

    (line,) = lines(False, (1e-3, 1e-2))
    assert "(1.0 decades)" in line and "--confirm-learning-rate" in line
    assert lines(False, (4e-3, 8e-3)) == []  # a narrow band: nothing to add
    assert lines(True, (1e-3, 1e-2)) == [] and lines(False, None) == []  # asked for already; no band


def test_a_pretrained_whole_model_points_to_the_confirmation_whatever_its_band(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from types import SimpleNamespace

    from traenslenzor.doc_classifier.tuning.steps import _fine_tunes_whole_model, _point_to_confirmation

    caplog.set_level(logging.INFO)

    def lines(confirm: bool, band: tuple[float, float] | None) -> list[str]:
        caplog.clear()
        config = SimpleNamespace(tuner_config=SimpleNamespace(confirm_learning_rate=confirm))
        _point_to_confirmation(config, band, fine_tuned=True)
        return _tuner_lines(caplog)

    (line,) = lines(False, (4e-3, 8e-3))  # a narrow band: the fine-tuning line alone
    assert "pretrained backbone" in line and "--confirm-learning-rate" in line
    (line,) = lines(False, (1e-3, 1e-2))  # a wide band: one line, the band's
    assert "(1.0 decades)" in line
    assert lines(True, (4e-3, 8e-3)) == []  # asked for already

    def run(pretrained: bool, record_key: str) -> SimpleNamespace:
        return SimpleNamespace(
            config=SimpleNamespace(module_config=SimpleNamespace(pretrained=pretrained)),
            phase=SimpleNamespace(record_key=record_key),
        )

    assert _fine_tunes_whole_model(run(True, "learning_rate"))  # one phase, or the whole-model phase
    assert not _fine_tunes_whole_model(run(True, "learning_rate_head"))  # the backbone is frozen
    assert not _fine_tunes_whole_model(run(False, "learning_rate"))  # training from scratch
