"""The pinned public names of traenslenzor.tuner resolve, and the core never imports Lightning."""

from __future__ import annotations

import inspect
import subprocess
import sys

import traenslenzor.tuner as tuner


def test_every_exported_name_resolves() -> None:
    for name in tuner.__all__:
        assert getattr(tuner, name) is not None, name


def test_find_lr_signature_is_the_pinned_one() -> None:
    params = inspect.signature(tuner.find_lr).parameters
    assert list(params)[:4] == ["model", "optimizer", "loss_fn", "train_loader"]
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    assert defaults["min_lr"] == 1e-8
    assert defaults["max_lr"] == 1.0
    assert defaults["num_training"] == 100
    assert defaults["mode"] == "exponential"
    assert defaults["early_stop_threshold"] == 4.0


def test_core_imports_no_lightning() -> None:
    code = (
        "import sys; from traenslenzor.tuner import find_lr, find_batch_size, LRFinderResult, SUGGESTIONS; "
        "import traenslenzor.tuner.lr_plot, traenslenzor.tuner.batch_plot; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'matplotlib')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
