"""Two processes end to end: the quickstart CLI under ``strategy="ddp"`` on CPU (gloo), tuned and trained.

Marked ``ddp`` (deselected by default; ``python -m pytest -m ddp tests/doc_classifier/test_ddp.py``): two
processes that each import torch and Lightning take longer than the rest of the suite allows on two cores.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from traenslenzor.doc_classifier.cli import main

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "traenslenzor/doc_classifier/run.py"
TWO_PROCESSES = ["--trainer_config.accelerator=cpu", "--trainer_config.devices=2"]
TINY = [
    "--datamodule_config.image_size=32",
    "--datamodule_config.synthetic_train_size=64",
    "--datamodule_config.synthetic_val_size=16",
    "--datamodule_config.synthetic_test_size=16",
    "--datamodule_config.mean=0.8",
    "--datamodule_config.std=0.2",
    "--trainer_config.max_epochs=1",
    "--trainer_config.enable_progress_bar=false",
    "--trainer_config.cpu_threads=1",
    "--tuner_config.steps_per_trial=1",
    "--tuner_config.max_val=8",
    "--tuner_config.num_training=24",
]


def test_spawning_strategies_with_the_tuner_exit_2_before_any_process_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from traenslenzor.doc_classifier import experiment

    def no_data(config: object) -> None:
        raise AssertionError("the data was built (and processes could have started) before the check")

    monkeypatch.setattr(experiment, "build_datamodule", no_data)
    config = tmp_path / "exp.toml"
    shutil.copy(REPO / ".configs/quickstart.toml", config)
    flags = ["--config_path", str(config), *TWO_PROCESSES, "--tune-batch-size"]
    for strategy in ("ddp_spawn", "fsdp"):
        assert main([*flags, f"--trainer_config.strategy={strategy}"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"error: trainer_config.strategy = {strategy!r} cannot be tuned") and "'ddp'" in line
    assert main([*flags, "--trainer_config.strategy=dpp"]) == 2
    assert "unknown strategy 'dpp'" in capsys.readouterr().err


@pytest.mark.ddp
def test_two_processes_tune_once_and_train_with_the_same_values(tmp_path: Path) -> None:
    config = tmp_path / "exp.toml"
    shutil.copy(REPO / ".configs/quickstart.toml", config)
    args = ["--config_path", str(config), "--tune-batch-size", "--tune-learning-rate", "--save-tuned-config",
            *TWO_PROCESSES, "--trainer_config.strategy=ddp", *TINY]  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(RUN), *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    lines = re.split(r"[\r\n]+", output)  # the tuner's progress bar ends its line with \r

    def once(prefix: str) -> str:
        hits = [line for line in lines if line.startswith(prefix)]
        assert len(hits) == 1, f"{prefix!r} found {len(hits)} times"
        return hits[0]

    batch = int(once("[ExperimentConfig::tuner]: ✓ Optimal batch size found: ").rsplit(": ", 1)[1])
    lr = float(once("[ExperimentConfig::tuner]: ✓ Suggested learning rate: ").rsplit(": ", 1)[1].split()[0])
    once(f"[ExperimentConfig::tuner]: Batch: {batch} per process x 2 processes x 1 accumulation = global batch ")
    once("[ExperimentConfig::tuner]:   LR finder plot saved to: .logs/lr_finder_plot.png")
    once("[ExperimentConfig::tuner]:   Tuning results saved to: .logs/tuning_results.json")
    once("[ExperimentConfig::tuner]:   Tuned values written to: ")
    once("[ExperimentConfig::train]: Starting training (fit)...")
    once("[ExperimentConfig::train]: Finished training: val/acc=")

    # Every rank reports what it trains with: the same batch size and LR on both.
    effective = [line for line in lines if "In effect (rank" in line]
    assert len(effective) == 2, effective
    ranks = {re.search(r"rank (\d) of 2", line).group(1): line.split(": ", 1)[1] for line in effective}
    assert set(ranks) == {"0", "1"}
    values = [dict(re.findall(r"(batch_size|learning_rate|global batch)=([^,\s]+)", line)) for line in ranks.values()]
    assert values[0] == values[1]
    assert int(values[0]["batch_size"]) == batch and int(values[0]["global batch"]) == 2 * batch
    assert float(values[0]["learning_rate"]) == pytest.approx(lr, rel=5e-3)

    record = json.loads((tmp_path / ".logs/tuning_results.json").read_text(encoding="utf-8"))
    assert record["learning_rate"]["values"]["world_size"] == 2
    assert record["learning_rate"]["values"]["global_batch"] == 2 * batch
    assert (tmp_path / ".logs/lr_finder_plot.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".logs/*.tmp")) and not list(tmp_path.glob(".*.tmp"))
