"""Hold-out tasks for issue 20 (the fixed-batch wall reading), committed before any of them was measured.

The reading of issue 20 was designed on the design and confirm tasks of ``lr_tasks`` (12) and the design tasks of
``horizon_tasks`` (long, onecycle, app). Everything else is hold-out and was not looked at while designing:

* ``lr_tasks``: the groups holdout .. fifth holdout (20 tasks, earlier rounds' hold-outs; measured before with
  other rules, not with this reading), and ``SIXTH_HOLDOUT`` below (new: other model/optimizer/loss pairs);
* ``horizon_tasks``: ``HOLDOUT_TASKS`` (5, measured before with the old rule) and ``HORIZON_HOLDOUT_2`` below (new).

The new tasks reuse the builders of ``lr_tasks`` / ``horizon_tasks`` (same oracles, same caches, keyed by hash).
"""

from __future__ import annotations

from benchmarks.horizon_tasks import ADAM_RANGE, SGD_RANGE, HorizonTask
from benchmarks.lr_tasks import Task

# committed 2026-12-05 before any measurement: a deep MLP with SGD-momentum and CE, a transformer with Adam at
# batch 64, RAdam on the BatchNorm CNN, RMSprop on the GRU, linear MSE regression with SGD-momentum, a BatchNorm
# MLP with Adam on MSE.
SIXTH_HOLDOUT: tuple[Task, ...] = (
    Task("mlp_deep_sgdm", "mlp_deep", "blobs", "ce", "sgd_momentum", steps=200, finder_range=(1e-8, 10.0)),
    Task("transformer_adam_b64", "transformer", "sequences", "ce", "adam", steps=150, batch_size=64),
    Task("cnn_bn_radam", "cnn_bn", "images", "ce", "radam", steps=150),
    Task("gru_rmsprop", "gru", "sequences", "ce", "rmsprop", steps=200),
    Task(
        "linreg_sgdm_mse",
        "linear",
        "regression",
        "mse",
        "sgd_momentum",
        steps=200,
        input_scale=3.0,
        finder_range=(1e-8, 10.0),
    ),
    Task("mlp_bn_adam_mse", "mlp_bn", "regression", "mse", "adam", steps=200),
)

# committed 2026-12-05 before any measurement: RMSprop at a long constant horizon, OneCycle on a deep MLP with
# SGD-momentum and MSE, OneCycle with Adam on the GRU.
HORIZON_HOLDOUT_2: tuple[HorizonTask, ...] = (
    HorizonTask("long_mlp_rmsprop", "long", "holdout", "mlp", "blobs", "ce", "rmsprop", steps=3000, lattice=ADAM_RANGE),
    HorizonTask(
        "oc_mlp_deep_sgdm_mse",
        "onecycle",
        "holdout",
        "mlp_deep",
        "regression",
        "mse",
        "sgd_momentum",
        steps=2000,
        schedule="onecycle",
        finder_range=(1e-8, 10.0),
        lattice=SGD_RANGE,
    ),
    HorizonTask(
        "oc_gru_adam",
        "onecycle",
        "holdout",
        "gru",
        "sequences",
        "ce",
        "adam",
        steps=2000,
        schedule="onecycle",
        lattice=ADAM_RANGE,
    ),
)
