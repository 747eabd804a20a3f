"""The LR confirmation: its Optuna study (resume, stale trials, a database that is not ours), the settings refused
before any training, the verdict ("not decided" keeps the finder's LR; a budget too short is refused with the
budget that would do), continued runs under a constant LR, reuse through the tuning record, and real Lightning
trials that leave nothing behind.

The study tests train nothing: a fake trial returns a loss curve computed from the LR. One test runs real trials.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import sqlite3
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from traenslenzor.doc_classifier.cli import main
from traenslenzor.doc_classifier.config import load_config
from traenslenzor.doc_classifier.experiment import build_datamodule, build_module
from traenslenzor.doc_classifier.tuning import searches, steps, workflow
from traenslenzor.doc_classifier.tuning.config_writer import save_tuning
from traenslenzor.doc_classifier.tuning.confirm import trials
from traenslenzor.doc_classifier.tuning.confirm.study import (
    ConfirmStudyError,
    TrialCurve,
    check_database,
    fail_interrupted,
    open_study,
    run_rungs,
)
from traenslenzor.doc_classifier.tuning.record import model_trigger
from traenslenzor.tuner import decide, plan_confirmation

REPO = Path(__file__).resolve().parents[4]
BEST = 3e-3  # the fake trials' best LR


def fake_trial(lr: float, steps: int) -> TrialCurve:
    """A validation curve that falls with the steps and is lowest at ``BEST`` (a parabola in log LR)."""
    final = 0.5 + (math.log10(lr / BEST)) ** 2 + 1.0 / steps
    curve = tuple((s, final + (steps - s) / steps) for s in range(steps // 2, steps + 1, steps // 2))
    return TrialCurve(curve, final, steps)


class Counting:
    """``fake_trial`` that counts its calls and raises ``KeyboardInterrupt`` at call ``interrupt_at`` (1-based)."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.calls: list[tuple[float, int]] = []
        self.interrupt_at = interrupt_at

    def __call__(self, lr: float, rung) -> TrialCurve:
        steps = getattr(rung, "steps", rung)  # a Rung (run_rungs) or a step count (train_trial)
        self.calls.append((lr, steps))
        if len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        return fake_trial(lr, steps)


PLAN = plan_confirmation(1e-3, 2000)  # 6 candidates 1e-4 .. 1.8e-3; rungs 6 x 41, 2 x 123
SMALL = plan_confirmation(1e-3, 100, count=2)  # one rung of 2 trials: where the plan's shape does not matter


# --- the study -----------------------------------------------------------------------------------------------------


def test_the_rungs_keep_the_best_and_store_every_trial(tmp_path: Path) -> None:
    study = open_study(tmp_path / "s.db", "name")
    train = Counting()
    losses, trials = run_rungs(study, PLAN, train)
    assert decide(losses, PLAN.incumbent).learning_rate == pytest.approx(10**-2.75)  # the candidate nearest 3e-3
    assert [(t.rung, t.steps) for t in trials] == [(0, 41)] * 6 + [(1, 123)] * 2
    assert {lr for lr, steps in train.calls if steps == 123} == {10**-3, 10**-2.75}  # the two best of rung 1 go on
    stored = study.get_trials()
    assert [t.state.name for t in stored] == ["COMPLETE"] * 8
    assert stored[-2].params == {"lr": pytest.approx(10**-2.75), "rung": 1}  # rung 1 runs its best first
    assert stored[-1].intermediate_values  # the curve, reported step by step
    assert stored[-1].user_attrs["trained_steps"] == 123


def test_an_interrupted_study_resumes_and_trains_only_what_is_missing(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    with pytest.raises(KeyboardInterrupt):
        run_rungs(open_study(database, "name"), PLAN, Counting(interrupt_at=4))
    study = open_study(database, "name")
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * 3 + ["FAIL"]
    resumed = Counting()
    losses, trials = run_rungs(study, PLAN, resumed)
    assert len(resumed.calls) == PLAN.trials - 3  # the interrupted trial again, and the ones never started
    assert [t.reused for t in trials] == [True] * 3 + [False] * 5
    assert decide(losses, PLAN.incumbent).learning_rate == pytest.approx(10**-2.75)  # as uninterrupted (above)


def test_a_trial_left_running_by_a_crash_is_failed_and_trained_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    database = tmp_path / "s.db"
    crashed = open_study(database, "name")
    crashed.enqueue_trial({"lr": SMALL.candidates[0], "rung": 0})
    crashed.ask({"lr": CategoricalDistribution(SMALL.candidates), "rung": IntDistribution(0, 0)})  # never told
    study = open_study(database, "name")
    assert [t.state.name for t in study.get_trials()] == ["RUNNING"]
    caplog.set_level(logging.INFO)
    assert fail_interrupted(study) == 1
    assert "1 trial(s) of an interrupted run are trained again" in caplog.text
    train = Counting()
    run_rungs(study, SMALL, train)
    assert len(train.calls) == SMALL.trials == 2
    assert [t.state.name for t in study.get_trials()] == ["FAIL"] + ["COMPLETE"] * 2


def test_a_fresh_study_drops_only_its_own_trials(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    run_rungs(open_study(database, "mine"), SMALL, Counting())
    run_rungs(open_study(database, "other"), SMALL, Counting())
    assert open_study(database, "mine", fresh=True).get_trials() == []
    assert len(open_study(database, "other").get_trials()) == 2


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (name TEXT)")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"not a database at all, just text" * 10), "is not an SQLite database"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200), "cannot be read as an SQLite database"),
        (_foreign, "is an SQLite database of something else (tables: users)"),
    ],
    ids=["text", "corrupt-sqlite", "foreign"],
)
def test_a_database_that_is_not_optunas_is_refused_and_left_untouched(tmp_path: Path, make, message: str) -> None:
    database = tmp_path / "lr_confirm.db"
    make(database)
    before = database.read_bytes()
    with pytest.raises(ConfirmStudyError, match=re.escape(message)) as info:
        open_study(database, "name")
    assert "it was left as it is" in str(info.value)
    assert database.read_bytes() == before
    check_database(tmp_path / "missing.db")  # no file yet: Optuna creates it


# --- settings refused before any training --------------------------------------------------------------------------


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))  # main() adds one
    config = tmp_path / "exp.toml"
    shutil.copy(REPO / ".configs/quickstart.toml", config)
    return main(["--config_path", str(config), "--confirm-learning-rate", "--tune-only", *extra])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--tuner_config.confirm_budget=0", "tuner_config.confirm_budget (from command-line override"),
        ("--tuner_config.confirm_budget=1.5", "less than or equal to 1"),
        ("--tuner_config.confirm_candidates=1", "tuner_config.confirm_candidates"),
        ("--trainer_config.limit_val_batches=0", "scores its trials on validation loss"),
        ("--trainer_config.devices=2", "runs in one process, but this run would start 2"),
    ],
)
def test_bad_confirm_settings_exit_2_with_one_line_before_any_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, override: str, message: str
) -> None:
    monkeypatch.setattr(trials, "train_trial", pytest.fail)  # nothing may train
    assert _cli(tmp_path, monkeypatch, override) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
    assert not (tmp_path / ".logs").exists()  # no data, no study, nothing written


def test_a_corrupt_study_database_exits_2_before_any_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    database = tmp_path / ".logs" / "lr_confirm.db"
    database.parent.mkdir()
    database.write_bytes(b"garbage" * 100)
    assert _cli(tmp_path, monkeypatch) == 2
    assert "lr_confirm.db is not an SQLite database" in capsys.readouterr().err
    assert database.read_bytes() == b"garbage" * 100
    assert sorted(p.name for p in database.parent.iterdir()) == ["lr_confirm.db"]


# --- reuse through the tuning record -------------------------------------------------------------------------------


class _FakeTuner:
    """A tuner whose LR finder suggests 1e-3 at once (no curve: the candidates come from the window alone)."""

    def __init__(self, trainer: object) -> None:
        pass

    def lr_find(self, model: object, **kwargs: object) -> object:
        return SimpleNamespace(
            suggestion=lambda method=None: 1e-3, diagnostics=lambda method=None: [], to_dict=lambda: {}, plot=None
        )


def _tune(*overrides: str, retune: bool = False) -> tuple[workflow.TuningOutcome, object]:
    config = load_config(REPO / ".configs/quickstart.toml", list(overrides))
    module = build_module(config)
    loader = range(100)  # 100 batches an epoch x 6 epochs: 600 planned steps
    datamodule = SimpleNamespace(hparams=SimpleNamespace(batch_size=32), train_dataloader=lambda: loader)
    outcome = workflow.run_tuning(
        config, module, datamodule, batch_size=False, learning_rate=True, retune=retune, confirm=True
    )
    return outcome, module


def test_a_finished_confirmation_is_reused_while_its_triggers_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(steps, "Tuner", _FakeTuner)
    monkeypatch.setattr(searches, "save_plot", lambda *args: None)
    train = _fake_lightning(monkeypatch)
    caplog.set_level(logging.INFO)
    first, module = _tune()
    lines = [r.getMessage().removeprefix("[ExperimentConfig::tuner]: ") for r in caplog.records]
    assert len(train.calls) == 8 and first.learning_rate == pytest.approx(10**-2.75)
    assert first.suggested_learning_rate == 1e-3 and module.hparams.learning_rate == first.learning_rate
    assert module.hparams.max_lr == pytest.approx(3 * first.learning_rate) == first.max_lr
    start = "✓ Confirmed learning rate: 1.78e-03 (1.78e-03 beat the finder's LR 1.00e-03 by 23.3% of its loss; 8 trials"
    confirmed = [i for i, line in enumerate(lines) if line.startswith(start)]
    assert len(confirmed) == 1 and "training steps = 24.0 % of the planned training)" in lines[confirmed[0]]
    assert lines[confirmed[0] + 1] == "  Updated optimizer LR: 1.00e-03 → 1.78e-03"
    assert lines[confirmed[0] + 2] == "  OneCycle max_lr: 5.33e-03 (3 × LR)"
    assert Path(".logs/lr_confirm.db").is_file() and Path(".logs/lr_confirm_plot.png").read_bytes()[:4] == b"\x89PNG"

    # --save-tuned-config writes the confirmed LR (and its OneCycle peak), not the finder's
    config = tmp_path / "exp.toml"
    shutil.copy(REPO / ".configs/quickstart.toml", config)
    save_tuning(config, config, first, load_config(config))
    saved = tomllib.loads(config.read_text(encoding="utf-8"))["module_config"]
    assert (saved["optimizer"]["learning_rate"], saved["scheduler"]["max_lr"]) == (0.00178, 0.00533)

    caplog.clear()
    second, module = _tune()
    assert len(train.calls) == 8  # nothing trained again
    assert second.learning_rate == first.learning_rate and "lr_confirm" in second.reused
    assert "✓ Reusing confirmed learning rate 1.78e-03 from .logs/tuning_results.json" in caplog.text

    caplog.clear()
    _tune("tuner_config.confirm_candidates=4")  # another plan: another study
    assert len(train.calls) == 8 + 4
    assert "Re-tuning the confirmed learning rate: confirmation (plan" in caplog.text


def _fake_lightning(monkeypatch: pytest.MonkeyPatch, start: float = 2.0) -> Counting:
    """Replace the Lightning trial with ``Counting`` and the start's validation loss with ``start``."""
    train = Counting()
    monkeypatch.setattr(trials, "train_trial", lambda *args, lr, steps, **kwargs: train(lr, steps))
    monkeypatch.setattr(trials, "start_loss", lambda *args: start)
    return train


def _record() -> dict:
    import json

    return json.loads(Path(".logs/tuning_results.json").read_text(encoding="utf-8"))["lr_confirm"]


def test_trials_that_do_not_move_the_loss_keep_the_finders_lr_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(steps, "Tuner", _FakeTuner)
    monkeypatch.setattr(searches, "save_plot", lambda *args: None)
    _fake_lightning(monkeypatch, start=0.56)  # the best fake trial ends at 0.5596: not 1 % below its start
    caplog.set_level(logging.INFO)
    outcome, module = _tune()
    assert outcome.learning_rate == 1e-3 == module.hparams.learning_rate  # the finder's LR, kept
    assert "Learning rate not decided, keeping the finder's LR 1.00e-03: not decided: no trial lowered" in caplog.text
    values = _record()["values"]
    assert values["decided"] is False and "too short to tell the LRs apart" in values["reason"]
    assert values["start_loss"] == 0.56 and values["trials"] == 8


def test_a_budget_too_short_for_a_trial_keeps_the_finders_lr_and_names_the_budget_that_would_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(steps, "Tuner", _FakeTuner)
    monkeypatch.setattr(searches, "save_plot", lambda *args: None)
    train = _fake_lightning(monkeypatch)
    caplog.set_level(logging.INFO)
    outcome, _ = _tune("tuner_config.confirm_budget=0.1")  # 0.1 x 600 steps / 12 = 5-step first-rung trials
    assert train.calls == [] and outcome.learning_rate == 1e-3
    assert "gives 5-step first-rung trials, fewer than the 10" in caplog.text
    assert "confirm_budget = 0.2 would give 10-step trials" in caplog.text
    assert _record()["values"]["decided"] is False and _record()["plan"] is None
    caplog.clear()
    again, _ = _tune("tuner_config.confirm_budget=0.1")  # the refusal is recorded and reused like a verdict
    assert "✓ Reusing confirmed learning rate 1.00e-03" in caplog.text and "Ignoring" not in caplog.text
    assert again.learning_rate == 1e-3 and train.calls == []


def test_under_a_constant_lr_survivors_continue_their_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(steps, "Tuner", _FakeTuner)
    monkeypatch.setattr(searches, "save_plot", lambda *args: None)
    monkeypatch.setattr(trials, "start_loss", lambda *args: 2.0)
    starts = []

    def trial(config, module, datamodule, *, lr, steps, carry, **kwargs) -> TrialCurve:
        parameter = next(module.parameters())
        starts.append((lr, steps, float(parameter.detach().flatten()[0]), carry.state))
        with torch.no_grad():
            parameter.add_(lr)  # the run's end: the start's weights moved by its LR
        carry.state = {"after": (lr, steps)}
        return fake_trial(lr, steps)

    monkeypatch.setattr(trials, "train_trial", trial)
    outcome, module = _tune("module_config.scheduler.name=none")  # 600 steps: 10 s0 <= 150 -> s0 = 15
    origin = starts[0][2]
    assert [steps for _, steps, _, _ in starts[:6]] == [15] * 6
    assert all(w == pytest.approx(origin) and state is None for _, _, w, state in starts[:6])  # rung 0: the start
    continued = starts[6:]
    assert [steps for _, steps, _, _ in continued] == [30, 30]  # 45-step runs: 30 more each
    for lr, _, w, state in continued:
        assert w == pytest.approx(origin + lr, abs=1e-6) and state == {"after": (lr, 15)}  # its own run goes on
    assert float(next(module.parameters()).detach().flatten()[0]) == pytest.approx(origin)  # restored after
    assert outcome.learning_rate == pytest.approx(10**-2.75) and _record()["values"]["steps"] == 6 * 15 + 2 * 30


# --- real trials ---------------------------------------------------------------------------------------------------


def test_real_trials_start_from_one_state_and_leave_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    tiny = ["datamodule_config.image_size=32", "datamodule_config.synthetic_train_size=160",
            "datamodule_config.synthetic_val_size=32", "datamodule_config.batch_size=8",
            "datamodule_config.mean=0.8", "datamodule_config.std=0.2", "trainer_config.max_epochs=1",
            "trainer_config.enable_progress_bar=false", "tuner_config.confirm_budget=1.0",
            "tuner_config.confirm_candidates=2"]  # fmt: skip
    config = load_config(REPO / ".configs/quickstart.toml", tiny)
    datamodule, module = build_datamodule(config), build_module(config)
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    rng, hparams = torch.get_rng_state(), dict(module.hparams)
    setup = trials.prepare_confirmation(
        config, datamodule, suggestion=1e-3, finder_result=None, accumulation=1,
        model=model_trigger("tiny_cnn", module.model),
    )  # fmt: skip
    assert [(r.trials, r.steps) for r in setup.plan.rungs] == [(2, 10)]  # 20 planned steps, all of them
    seen = []
    original = trials.train_trial

    def watched(*args, **kwargs):
        seen.append(next(module.parameters()).detach().clone())  # the state each trial starts from
        return original(*args, **kwargs)

    monkeypatch.setattr(trials, "train_trial", watched)
    outcome = trials.confirm_learning_rate(config, module, datamodule, setup)
    assert len(outcome.trials) == 2 and all(t.steps == 10 and math.isfinite(t.loss) for t in outcome.trials)
    assert all(t.curve[-1][0] == 10 for t in outcome.trials)  # the last validation at the trial's last step
    assert math.isfinite(outcome.start_loss) and outcome.verdict.reason  # the start's validation loss, the verdict
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[0], weights["model.0.0.weight"])
    assert all(torch.equal(v, weights[k]) for k, v in module.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng) and dict(module.hparams) == hparams
    assert outcome.plot is not None and outcome.plot.is_file()
