"""The fakes of ``tests/helpers/lightning_models.py`` do what the adapter tests rely on."""

from __future__ import annotations

import pytest

from tests.helpers.lightning_models import MPS_OOM, TinyModel, dataset, trial_sizes


def test_fake_oom_raises_the_given_message_above_the_limit() -> None:
    model = TinyModel(oom_above=3, oom_message=MPS_OOM)
    x, y = dataset(4).tensors
    assert model._step((x[:3], y[:3])).ndim == 0
    with pytest.raises(RuntimeError, match="MPS backend out of memory"):
        model._step((x, y))


def test_trial_sizes_splits_runs_of_steps() -> None:
    # 2 ok (3 steps), 4 ok (3 steps), 8 fails at once, 6 ok (3 steps)
    assert trial_sizes([2, 2, 2, 4, 4, 4, 8, 6, 6, 6], 3) == [2, 4, 8, 6]
