"""End to end: ``run.py`` on the quickstart config, shrunk by dotted overrides, as a user runs it."""

from __future__ import annotations

import json
import re
import runpy
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from PIL import Image

from traenslenzor.doc_classifier.cli import build_parser, main, split_overrides
from traenslenzor.doc_classifier.tuning.config_writer import readable_lr
from traenslenzor.tuner import LRFinderResult

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "traenslenzor/doc_classifier/run.py"
SHRINK = [
    "--datamodule_config.image_size=32",
    "--datamodule_config.synthetic_train_size=96",
    "--datamodule_config.synthetic_val_size=32",
    "--datamodule_config.synthetic_test_size=16",
    "--datamodule_config.mean=0.8",
    "--datamodule_config.std=0.2",
    "--trainer_config.max_epochs=1",
    "--trainer_config.enable_progress_bar=false",
    "--trainer_config.cpu_threads=1",
    "--tuner_config.steps_per_trial=1",
    "--tuner_config.max_val=8",
    "--tuner_config.num_training=30",
]
GUIDE_LINES = [
    "[ExperimentConfig::tuner]: Running batch size tuning...",
    "[ExperimentConfig::tuner]: Mode: power, init_val: 2, max_trials: 25",
    "[ExperimentConfig::tuner]: ✓ Optimal batch size found: ",
    "[ExperimentConfig::tuner]: Running learning rate finder (LR range test)...",
    "[ExperimentConfig::tuner]: Training for ~30 iterations while exponentially increasing LR...",
    "[ExperimentConfig::tuner]: ✓ Suggested learning rate: ",
    "[ExperimentConfig::tuner]:   Updated optimizer LR: 1.00e-03 → ",
    "[ExperimentConfig::tuner]:   LR finder plot saved to: .logs/lr_finder_plot.png",
    "[ExperimentConfig::train]: Starting training (fit)...",
]
TUNED_KEYS = ("batch_size = ", "learning_rate = ", "max_lr = ")


def _run_subprocess(cwd: Path, args: list[str]) -> list[str]:
    """``python run.py ...`` exactly as a user types it; its stdout and stderr lines."""
    done = subprocess.run(
        [sys.executable, str(RUN), *args], cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return [line.rstrip() for line in output.splitlines()]


def _run_in_process(
    cwd: Path, args: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """The same script run with ``runpy`` in this process (saves the ~15 s of imports); its log lines."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [str(RUN), *args])
    monkeypatch.setattr(sys, "path", list(sys.path))  # run.py puts the repo root first; undo afterwards
    caplog.set_level("INFO")
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(RUN), run_name="__main__")
    assert info.value.code == 0
    return [record.getMessage() for record in caplog.records]


def _quickstart_copy(folder: Path) -> Path:
    """A copy of the quickstart config to run (and let --save-tuned-config edit) in ``folder``."""
    config = folder / "exp.toml"
    shutil.copy(REPO / ".configs/quickstart.toml", config)
    return config


def _positions(lines: list[str], prefixes: list[str]) -> list[int]:
    found = []
    for prefix in prefixes:
        hits = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        assert len(hits) == 1, f"{prefix!r} found {len(hits)} times"
        found.append(hits[0])
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "save_to", "in_process"),
    [
        (["--tune-batch-size", "--tune-learning-rate"], None, False),
        (["--tune-learning-rate", "--tune-batch-size"], "tuned/quickstart_tuned.toml", True),
    ],
    ids=["bs-then-lr-subprocess", "lr-then-bs-in-process"],
)
def test_run_py_tunes_batch_size_then_lr_applies_both_and_trains(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    flags: list[str],
    save_to: str | None,
    in_process: bool,
) -> None:
    config = tmp_path / "quickstart.toml"
    shutil.copy(REPO / ".configs/quickstart.toml", config)
    original = config.read_text(encoding="utf-8")
    save = ["--save-tuned-config"] + ([save_to] if save_to else [])
    args = ["--config_path", str(config), *flags, *save, *SHRINK]
    lines = _run_in_process(tmp_path, args, monkeypatch, caplog) if in_process else _run_subprocess(tmp_path, args)

    positions = _positions(lines, GUIDE_LINES)
    assert positions == sorted(positions), "guide log lines out of order (batch size must come before LR)"

    batch_size = int(lines[positions[2]].rsplit(": ", 1)[1])
    suggested = float(lines[positions[5]].rsplit(": ", 1)[1].split()[0])  # the band follows the number
    assert lines[positions[6]].endswith(f"→ {suggested:.2e}")
    assert batch_size in (2, 4, 8)

    results = json.loads((tmp_path / ".logs/tuning_results.json").read_text(encoding="utf-8"))
    assert results["batch_size"]["values"] == {"batch_size": batch_size}
    lr = results["learning_rate"]["values"]["learning_rate"]
    assert f"{lr:.2e}" == f"{suggested:.2e}"
    curve = LRFinderResult.from_dict(results["learning_rate"]["result"])
    assert len(curve.lrs) >= 2 and curve.lrs[0] == pytest.approx(1e-6)  # the quickstart's min_lr
    assert curve.suggestion() == pytest.approx(lr)
    assert results["learning_rate"]["values"]["global_batch"] == batch_size  # one process, no accumulation

    plot = tmp_path / ".logs/lr_finder_plot.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(plot) as image:
        image.verify()
    with Image.open(plot) as image:
        assert image.size[0] > 100 and image.size[1] > 100

    # What training really used, read by a callback from the live dataloader and optimizer at fit start.
    effective = next(line for line in lines if "In effect:" in line)
    values = dict(re.findall(r"(batch_size|learning_rate|OneCycle max_lr)=([^,\s]+)", effective))
    assert int(values["batch_size"]) == batch_size
    assert float(values["learning_rate"]) == pytest.approx(lr, rel=1e-5)
    assert float(values["OneCycle max_lr"]) == pytest.approx(3.0 * lr, rel=1e-5)
    assert any(line.startswith("[ExperimentConfig::train]: Finished training: val/acc=") for line in lines)

    saved = tmp_path / save_to if save_to else config
    after = saved.read_text(encoding="utf-8")
    changed = [(a, b) for a, b in zip(original.splitlines(), after.splitlines(), strict=True) if a != b]
    assert [a.split("=")[0].strip() for a, _ in changed] == ["learning_rate", "max_lr", "batch_size"]
    new = {b.split("=")[0].strip(): b.split("=")[1].split("#")[0].strip() for _, b in changed}
    assert int(new["batch_size"]) == batch_size
    assert float(new["learning_rate"]) == readable_lr(lr)
    assert float(new["max_lr"]) == readable_lr(3.0 * lr)
    assert all("#" in b for a, b in changed if "#" in a)  # trailing comments kept
    if save_to:
        assert config.read_text(encoding="utf-8") == original


def test_overrides_are_split_from_flags() -> None:
    parser = build_parser()
    assert split_overrides(parser, ["--a.b=1", "--c.d", "x y", "--e.f=--g"]) == ["a.b=1", "c.d=x y", "e.f=--g"]
    with pytest.raises(SystemExit):
        split_overrides(parser, ["--verbose"])
    with pytest.raises(SystemExit):
        split_overrides(parser, ["--a.b"])


def test_cli_reports_a_misspelled_key_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "exp.toml"
    config.write_text("[trainer_config]\nmax_epoch = 3\n", encoding="utf-8")
    assert main(["--config_path", str(config)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'trainer_config.max_epoch'" in err and str(config) in err and "max_epochs" in err


def test_cli_rejects_save_without_tuning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _quickstart_copy(tmp_path)
    assert main(["--config_path", str(config), "--save-tuned-config"]) == 2
    assert "need --tune-batch-size" in capsys.readouterr().err


def test_cli_reports_missing_rvl_cdip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "exp.toml"
    shutil.copy(REPO / ".configs/alexnet_scratch.toml", config)
    root = tmp_path / "no-such-rvl-cdip"
    on_cpu = ["--trainer_config.accelerator=cpu", "--trainer_config.precision=32-true"]  # the GPU check comes first
    assert main(["--config_path", str(config), f"--datamodule_config.root={root}", *on_cpu]) == 2
    assert str(root) in capsys.readouterr().err


def test_tune_only_does_not_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    config = _quickstart_copy(tmp_path)
    caplog.set_level("INFO")
    assert main(["--config_path", str(config), "--tune-batch-size", "--tune-only", "--stage", "train", *SHRINK]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert "[ExperimentConfig::tuner]: ✓ Optimal batch size found: 8" in messages
    assert not any("Starting training" in m for m in messages)
    assert not (tmp_path / ".logs/lr_finder_plot.png").exists()
    assert json.loads((tmp_path / ".logs/tuning_results.json").read_text())["batch_size"]["values"]["batch_size"] == 8


def test_stage_test_evaluates_and_lr_tuning_needs_training(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    config = _quickstart_copy(tmp_path)
    assert main(["--config_path", str(config), "--stage", "test", "--tune-learning-rate", *SHRINK]) == 2
    assert "--tune-learning-rate needs stage 'train'" in capsys.readouterr().err
    caplog.set_level("INFO")
    assert main(["--config_path", str(config), "--stage", "test", *SHRINK]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert "[ExperimentConfig::train]: Starting testing (test)..." in messages
    finished = next(m for m in messages if "Finished testing" in m)
    assert "test/acc=" in finished and "val/" not in finished


class _FakeResult:
    """Stands in for an LR finder result: a fixed curve, a fixed suggestion and one finding."""

    def __init__(self, suggestion: float | None) -> None:
        self._suggestion = suggestion
        self.results = {"lr": [1e-4, 1e-3, 1e-2], "loss": [2.0, 1.5, 3.0]}

    def suggestion(self, **kwargs: object) -> float | None:
        return self._suggestion

    def diagnostics(self, method: str | None = None) -> list[SimpleNamespace]:
        return [SimpleNamespace(severity="warning", message="the curve is noisy; raise num_training")]

    def to_dict(self) -> dict[str, object]:
        return {"results": self.results}

    def plot(self, suggest: bool = True, show: bool = False, ax: object = None, method: str | None = None) -> object:
        from matplotlib import pyplot as plt

        figure, axes = plt.subplots()
        axes.plot(self.results["lr"], self.results["loss"])
        return figure


class _FakeTuner:
    """Records the calls the workflow makes; finds batch size 32 and the given LR."""

    calls: ClassVar[list[tuple[str, dict[str, object]]]] = []
    suggestion: ClassVar[float | None] = 2e-3

    def __init__(self, trainer: object) -> None:
        self.batch_size_result: SimpleNamespace | None = None

    def scale_batch_size(self, model: object, *, max_memory: int | float | None = None, **kwargs: object) -> int:
        self.calls.append(("scale_batch_size", {**kwargs, "max_memory": max_memory}))
        kwargs["datamodule"].hparams.batch_size = 32  # type: ignore[attr-defined]
        self.batch_size_result = SimpleNamespace(to_dict=lambda: {"trials": [{"batch_size": 32, "fits": True}]})
        return 32

    def lr_find(self, model: object, **kwargs: object) -> _FakeResult:
        self.calls.append(("lr_find", kwargs))
        return _FakeResult(self.suggestion)


@pytest.mark.parametrize("suggestion", [2e-3, None])
def test_tuning_passes_the_config_and_applies_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suggestion: float | None
) -> None:
    from traenslenzor.doc_classifier.config import load_config
    from traenslenzor.doc_classifier.experiment import build_module
    from traenslenzor.doc_classifier.tuning import steps, workflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(steps, "Tuner", _FakeTuner)
    monkeypatch.setattr(_FakeTuner, "calls", [])
    monkeypatch.setattr(_FakeTuner, "suggestion", suggestion)
    config = load_config(REPO / ".configs/quickstart.toml", ["tuner_config.max_memory=0.5", "tuner_config.margin=0.1"])
    module = build_module(config)
    datamodule = SimpleNamespace(hparams=SimpleNamespace(batch_size=7))
    outcome = workflow.run_tuning(config, module, datamodule, batch_size=True, learning_rate=True)

    (first, bs_kwargs), (second, lr_kwargs) = _FakeTuner.calls
    assert (first, second) == ("scale_batch_size", "lr_find")
    tc = config.tuner_config
    assert {k: bs_kwargs[k] for k in ("mode", "init_val", "max_trials", "steps_per_trial", "margin", "max_val")} == {
        "mode": "power",
        "init_val": 2,
        "max_trials": 25,
        "steps_per_trial": 3,
        "margin": 0.1,
        "max_val": 64,
    }
    assert bs_kwargs["max_memory"] == 0.5 and bs_kwargs["method"] == "fit"
    assert (lr_kwargs["min_lr"], lr_kwargs["max_lr"], lr_kwargs["num_training"]) == (tc.min_lr, tc.max_lr, 200)
    assert lr_kwargs["mode"] == "exponential" and lr_kwargs["early_stop_threshold"] == 4.0
    assert lr_kwargs["update_attr"] is False  # the workflow, not the tuner, writes the LR (and OneCycle's peak)
    assert outcome.batch_size == 32 and datamodule.hparams.batch_size == 32
    if suggestion is None:  # nothing to apply: the configured LR and peak stay
        assert outcome.learning_rate is None and module.hparams.learning_rate == 1e-3
        assert module.hparams.max_lr == 3e-3
    else:
        assert outcome.learning_rate == module.hparams.learning_rate == 2e-3
        assert outcome.max_lr == module.hparams.max_lr == pytest.approx(6e-3)
    assert (tmp_path / ".logs/lr_finder_plot.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / ".logs/tuning_results.json").read_text())
    assert saved["batch_size"]["values"] == {"batch_size": 32}
    assert saved["learning_rate"]["values"]["learning_rate"] == suggestion
    assert saved["batch_size"]["search"] == {"trials": [{"batch_size": 32, "fits": True}]}
    assert saved["learning_rate"]["diagnostics"] == ["warning: the curve is noisy; raise num_training"]
    assert outcome.diagnostics == ("warning: the curve is noisy; raise num_training",)


@pytest.mark.parametrize(("stage", "written"), [("train", 48), ("test", 32)])
def test_saved_config_keeps_the_training_batch_size_after_an_eval_search(
    tmp_path: Path, stage: str, written: int
) -> None:
    from traenslenzor.doc_classifier.tuning.config_writer import save_tuning

    config = _quickstart_copy(tmp_path)
    from traenslenzor.doc_classifier.config import load_config

    tuning = SimpleNamespace(
        batch_size=48, accumulate_grad_batches=1, learning_rate=2e-3, max_lr=6e-3, weight_decay=None
    )
    assert save_tuning(config, config, tuning, load_config(config, [f"stage={stage}"])) == config
    saved = tomllib.loads(config.read_text(encoding="utf-8"))
    assert saved["datamodule_config"]["batch_size"] == written  # quickstart's own value is 32
    assert saved["module_config"]["optimizer"]["learning_rate"] == 2e-3


def test_checkpoint_is_evaluated_by_stage_val_and_resumed_by_stage_train(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    config = _quickstart_copy(tmp_path)
    caplog.set_level("INFO")

    def run(*args: str) -> tuple[dict[str, str], str | None]:
        caplog.clear()
        assert main(["--config_path", str(config), *SHRINK, *args]) == 0
        messages = [r.getMessage() for r in caplog.records]
        finished = next(m for m in messages if m.startswith("[ExperimentConfig::train]: Finished"))
        best = next((m.rsplit(": ", 1)[1] for m in messages if "Best checkpoint" in m), None)
        return dict(re.findall(r"(\S+)=([0-9.]+)", finished)), best

    trained, best = run("--stage", "train")
    assert best is not None and Path(best).is_file() and "epoch000" in best
    validated, _ = run("--stage", "val", f"--ckpt_path={best}")
    assert validated["val/acc"] == trained["val/acc"]  # the trained weights, not a fresh model
    # A 2-epoch run resumed from its epoch-0 checkpoint (as after an interruption) trains epoch 1 only ...
    two = ["--stage", "train", "--trainer_config.max_epochs=2", "--run_name=two",
           "--trainer_config.checkpoint.save_top_k=-1"]  # fmt: skip
    run(*two)
    first = tmp_path / ".logs/csv/two/version_0/checkpoints"
    assert sorted(p.name.split("-")[0] for p in first.glob("epoch*.ckpt")) == ["epoch000", "epoch001"]
    run(*two, f"--ckpt_path={next(first.glob('epoch000-*.ckpt'))}")
    resumed = tmp_path / ".logs/csv/two/version_1/checkpoints"
    assert sorted(p.name.split("-")[0] for p in resumed.glob("epoch*.ckpt")) == ["epoch001"]
    # ... while a changed schedule length is refused with the reason (exit 2, no traceback), before any step
    capsys.readouterr()
    assert main(["--config_path", str(config), *SHRINK, "--stage", "train", f"--ckpt_path={best}",
                 "--trainer_config.max_epochs=2"]) == 2  # fmt: skip
    assert re.search(r"OneCycle schedule spans 3 steps, this run's would span 6.*ckpt_path", capsys.readouterr().err)


@pytest.mark.parametrize(
    ("tuned", "where"),
    [(True, "run_stage"), (False, "run_stage"), (True, "run_tuning")],
    ids=["batch-size-tuned", "batch-size-from-config", "nothing-fitted"],
)
def test_out_of_memory_after_batch_tuning_explains_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tuned: bool, where: str
) -> None:
    """Training runs out of memory at the size the search found (on a GPU a longer run fragments the cache more
    than three trial steps do): the error propagates, and the log says which size and the three ways out. Not
    after a search in which nothing fitted: that error carries its own remedies."""
    import torch

    from traenslenzor.doc_classifier import experiment
    from traenslenzor.tuner import BatchSizeNotFoundError

    oom = "CUDA out of memory. Tried to allocate 164.00 MiB."
    nothing_fitted = BatchSizeNotFoundError(f"Even batch size 1 does not fit in memory ({oom})")
    error = torch.OutOfMemoryError(oom) if where == "run_stage" else nothing_fitted

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(experiment, where, fail)
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    flags = ["--tune-batch-size"] if tuned else []
    with pytest.raises(type(error)):
        main(["--config_path", str(_quickstart_copy(tmp_path)), *flags, *SHRINK])
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    if not tuned or where == "run_tuning":
        assert errors == []
        return
    found = json.loads((tmp_path / ".logs/tuning_results.json").read_text())["batch_size"]["values"]["batch_size"]
    assert len(errors) == 1, errors
    size = int(re.search(r"Out of memory at batch size (\d+)", errors[0]).group(1))
    assert size == found == 8  # SHRINK caps the search at max_val=8, and 8 fits on this CPU
    assert f"--datamodule_config.batch_size={int(size * 0.9)}" in errors[0]
    assert "--tuner_config.margin (now 0.02" in errors[0] and "expandable_segments:True" in errors[0]


def test_a_misspelled_batch_size_mode_exits_2_in_one_line_before_any_data_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from traenslenzor.doc_classifier import experiment

    def no_data(config: object) -> None:
        raise AssertionError("the data was built before the config was checked")

    monkeypatch.setattr(experiment, "build_datamodule", no_data)
    config = _quickstart_copy(tmp_path)
    assert main(["--config_path", str(config), "--tune-batch-size", "--tuner_config.batch_size_mode=powr"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "tuner_config.batch_size_mode" in line and "'powr'" in line
    assert all(f"'{mode}'" in line for mode in ("power", "binsearch", "auto", "throughput"))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--trainer_config.max_epochs=-1"],
            "max_epochs = -1 (no limit) with module_config.scheduler.name = 'onecycle'",
        ),
        (["--tuner_config.min_lr=2.0"], "min_lr=2.0 must be smaller than max_lr=1.0"),
        (["--tuner_config.max_memory=1"], "is an int, read as bytes, and is less than 1 MiB"),
        (["--trainer_config.accelerator=gpu"], "trainer_config.accelerator = 'gpu', but torch finds no GPU"),
        (["--trainer_config.accelerator=cuda"], "trainer_config.accelerator = 'cuda', but torch finds no GPU"),
    ],
)
def test_config_that_would_fail_late_exits_2_in_one_line_before_any_data_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
) -> None:
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    from traenslenzor.doc_classifier import experiment

    def no_data(config: object) -> None:
        raise AssertionError("the data was built before the config was checked")

    monkeypatch.setattr(experiment, "build_datamodule", no_data)
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))  # a machine without a GPU
    monkeypatch.setattr(MPSAccelerator, "is_available", staticmethod(lambda: False))
    config = _quickstart_copy(tmp_path)
    assert main(["--config_path", str(config), "--tune-batch-size", "--tune-learning-rate", *flags]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert expected in line


@pytest.mark.parametrize("name", ["alexnet_scratch", "resnet50_scratch", "vit_finetune"])
def test_gpu_configs_without_a_gpu_say_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))
    monkeypatch.setattr(MPSAccelerator, "is_available", staticmethod(lambda: False))
    path = REPO / f".configs/{name}.toml"
    assert tomllib.loads(path.read_text(encoding="utf-8"))["trainer_config"]["accelerator"] == "gpu"
    assert main(["--config_path", str(path), "--tune-batch-size", "--tune-learning-rate"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "torch finds no GPU on this machine; set --trainer_config.accelerator=cpu" in line


def test_more_devices_than_gpus_exits_2_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightning.pytorch.accelerators import CUDAAccelerator

    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: True))  # a machine with one GPU
    monkeypatch.setattr(CUDAAccelerator, "auto_device_count", staticmethod(lambda: 1))
    flags = ["--trainer_config.accelerator=gpu", "--trainer_config.devices=2", "--trainer_config.strategy=ddp"]
    assert main(["--config_path", str(_quickstart_copy(tmp_path)), *flags]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "trainer_config.devices = 2, but this machine has 1 CUDA GPU(s)" in line
