"""The tuning workflow's seams: what it passes to the tuner, and that the saved plot shows what the run applied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from traenslenzor.doc_classifier import tuning
from traenslenzor.doc_classifier.config import load_config
from traenslenzor.doc_classifier.experiment import build_module
from traenslenzor.tuner import SUGGESTIONS, LRFinderResult

REPO = Path(__file__).resolve().parents[2]


def _curve() -> LRFinderResult:
    """A smooth range test (flat, falling, then blowing up) on which every rule suggests a different-ish LR."""
    lrs = np.logspace(-6, 0, 100)
    x = np.log10(lrs)
    loss = 2.5 - 1.5 / (1 + np.exp(-(x + 3) * 2.5)) + np.where(x > -1.2, (x + 1.2) ** 2 * 3, 0)
    return LRFinderResult(
        lrs=tuple(lrs), losses=tuple(loss), raw_losses=tuple(loss), min_lr=1e-6, max_lr=1.0, num_training=100
    )


class _CurveTuner:
    """A tuner whose range test returns the fixed curve."""

    def lr_find(self, model: object, **kwargs: object) -> LRFinderResult:
        return _curve()


@pytest.mark.parametrize("rule", sorted(SUGGESTIONS))
def test_plot_marks_the_lr_the_run_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rule: str) -> None:
    """Needs ``LRFinderResult.plot(method=...)`` (the LR helper's change, issue 14.1): until it is merged, the
    plot call fails with an unexpected keyword."""
    from matplotlib import pyplot as plt

    monkeypatch.chdir(tmp_path)
    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure: (figures.append(figure), close(figure)))
    config = load_config(REPO / ".configs/quickstart.toml", [f"tuner_config.suggestion_method={rule}"])
    module = build_module(config)
    outcome, _ = tuning._tune_and_apply_lr(_CurveTuner(), module, None, config)

    applied = module.hparams.learning_rate
    assert applied == outcome["learning_rate"] == _curve().suggestion(method=rule)
    (figure,) = figures
    marks = [line for ax in figure.axes for line in ax.get_lines() if line.get_color() == "red"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [pytest.approx(applied)]
    assert (tmp_path / ".logs/lr_finder_plot.png").read_bytes()[:4] == b"\x89PNG"
