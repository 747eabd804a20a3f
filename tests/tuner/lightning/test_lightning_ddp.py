"""Two processes, gloo, CPU: ``tests/helpers/ddp_two_ranks.py`` run as Lightning's DDP launcher runs it (rank 1
re-runs the script). lr_find gives both ranks the same curve and LR; scale_batch_size lets each rank measure (32
and 8 fit) and both adopt the smallest (8); nothing is left on disk.

Marked ``ddp`` (about 40 s): deselected by default (pyproject ``addopts``); CI runs it on its own with
``python -m pytest -q -m ddp``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "helpers" / "ddp_two_ranks.py"


@pytest.mark.ddp
@pytest.mark.slow
def test_two_rank_ddp_tuning(tmp_path) -> None:
    out = tmp_path / "ddp_check.json"
    root = tmp_path / "root"
    root.mkdir()
    env = {**os.environ, "DDP_CHECK_OUT": str(out), "DDP_CHECK_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert all(report["checks"].values()), report["checks"]
    assert report["measured_batch_size_per_rank"] == [32, 8]
    assert report["batch_size_per_rank"] == [8, 8]
    assert report["lr_per_rank"][0] == report["lr_per_rank"][1]
