"""LR rescaling rules, with hand-computed values."""

import math

import pytest

from traenslenzor.tuner import rescale_lr, rescale_weight_decay, rule_for_optimizer


@pytest.mark.parametrize(
    ("rule", "from_batch", "to_batch", "expected"),
    [
        ("linear", 64, 256, 4e-3),  # 1e-3 x 256/64
        ("linear", 256, 64, 2.5e-4),  # 1e-3 x 64/256
        ("sqrt", 64, 256, 2e-3),  # 1e-3 x sqrt(4)
        ("sqrt", 256, 64, 5e-4),  # 1e-3 x sqrt(1/4)
        ("sqrt", 32, 32, 1e-3),
        ("sqrt", 32, 64, 1e-3 * math.sqrt(2)),
    ],
)
def test_rescale_lr_by_hand(rule, from_batch, to_batch, expected):
    assert rescale_lr(1e-3, from_batch=from_batch, to_batch=to_batch, rule=rule) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "rule"),
    [("SGD", "linear"), ("sgd", "linear"), ("Adam", "sqrt"), ("AdamW", "sqrt"), ("RMSprop", "sqrt")],
)
def test_rule_for_optimizer(name, rule):
    assert rule_for_optimizer(name) == rule


def test_unknown_optimizer_names_the_known_ones():
    with pytest.raises(ValueError, match=r"Shampoo.*known: .*adamw.*sgd"):
        rule_for_optimizer("Shampoo")


def test_weight_decay_keeps_the_product():
    wd = rescale_weight_decay(0.05, old_lr=1e-3, new_lr=4e-3)
    assert wd == pytest.approx(0.0125)
    assert wd * 4e-3 == pytest.approx(0.05 * 1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0, "from_batch": 8, "to_batch": 16, "rule": "sqrt"},
        {"lr": float("nan"), "from_batch": 8, "to_batch": 16, "rule": "sqrt"},
        {"lr": 1e-3, "from_batch": 0, "to_batch": 16, "rule": "sqrt"},
        {"lr": 1e-3, "from_batch": 8, "to_batch": 2.5, "rule": "sqrt"},
        {"lr": 1e-3, "from_batch": 8, "to_batch": 16, "rule": "cubic"},
    ],
)
def test_bad_input_is_refused(kwargs):
    lr = kwargs.pop("lr")
    with pytest.raises(ValueError):
        rescale_lr(lr, **kwargs)
