"""The pinned public names of traenslenzor.tuner resolve, and the core never imports Lightning."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

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
        "import traenslenzor.tuner.lr.plot, traenslenzor.tuner.batch.plot; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'matplotlib')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _type_checking_names() -> dict[str, str]:
    """name -> module of every import under the face's ``if TYPE_CHECKING:`` block, read with ``ast``."""
    tree = ast.parse(Path(tuner.__file__).read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.unparse(stmt)
                found.update({alias.name: stmt.module or "" for alias in stmt.names})
    return found


def test_the_type_checking_imports_agree_with_the_lazy_table() -> None:
    # IDEs read the TYPE_CHECKING block, the interpreter the table: the two must name the same objects.
    typed = _type_checking_names()
    assert set(typed) == set(tuner.__all__)
    for name, module in typed.items():
        assert getattr(importlib.import_module(module), name) is getattr(tuner, name), name


def test_the_face_keeps_round_two_names() -> None:
    # Round 3 moved the modules into lr/ and batch/; what users import from the face did not move.
    kept = {
        "Tuner",
        "find_lr",
        "find_batch_size",
        "LRFinderResult",
        "BatchSizeResult",
        "SweepSettings",
        "BatchSearchSettings",
        "RangeTest",
        "AdaptiveRange",
        "SUGGESTIONS",
        "DEFAULT_SUGGESTION",
        "Finding",
        "is_oom_error",
        "preserved_training_state",
        "rescale_lr",
        "group_lr_ratios",
        "set_group_lrs",
    }
    assert kept <= set(tuner.__all__)
