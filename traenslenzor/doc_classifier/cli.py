"""The command line of the users' guide: flags, dotted config overrides, logging, and ``main``.

::

    python traenslenzor/doc_classifier/run.py --config_path .configs/quickstart.toml \\
        --tune-batch-size --tune-learning-rate [--confirm-learning-rate] [--tune-only] [--save-tuned-config [PATH]] \\
        [--retune] [--trust-checkpoint] [--stage train|val|test|predict] [--predict_dir DIR] \\
        [--trainer_config.max_epochs=3 ...]

Everything is checked before anything expensive starts: the config (unknown keys, bad values), the flags, the
pretrained-weights file and the dataset folder. A bad one exits with status 2 and one message, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from traenslenzor.doc_classifier.checkpoint_file import CheckpointError
from traenslenzor.doc_classifier.config import ConfigError, ExperimentConfig, load_config
from traenslenzor.doc_classifier.experiment import run_experiment

# Top-level config keys that are values, not sections (``seed``, ``run_name``, ``ckpt_path``, ...): overridable as
# ``--ckpt_path=...`` without a dot.
TOP_LEVEL_KEYS = frozenset(name for name in ExperimentConfig.model_fields if not name.endswith("_config"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Tune (batch size, then learning rate) and train the document classifier from a TOML config.",
        epilog="Any config key can be overridden with a dotted flag, e.g. --trainer_config.max_epochs=3 "
        "--datamodule_config.batch_size=64; top-level keys without a dot, e.g. --ckpt_path=PATH. See docs/cli.md.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config_path",
        "--config-path",
        dest="config_path",
        required=True,
        type=Path,
        help="TOML config, e.g. .configs/quickstart.toml",
    )
    parser.add_argument("--tune-batch-size", action="store_true", help="find the largest batch size that fits")
    parser.add_argument("--tune-learning-rate", action="store_true", help="run the LR range test and apply it")
    parser.add_argument(
        "--confirm-learning-rate",
        action="store_true",
        help="after the LR finder (implied), train a few candidate LRs at this run's schedule for a share of its "
        "steps (tuner_config.confirm_budget) and keep the best on validation loss; an Optuna study in "
        ".logs/lr_confirm.db",
    )
    parser.add_argument("--tune-only", action="store_true", help="tune, report (and save), but do not train")
    parser.add_argument(
        "--retune",
        action="store_true",
        help="search again even where the tuning record (tuning_results.json) still matches the run",
    )
    parser.add_argument(
        "--save-tuned-config",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="write the tuned batch_size, accumulate_grad_batches, learning_rate and max_lr into PATH "
        "(default: the config itself)",
    )
    _add_trained_model_arguments(parser)
    return parser


def _add_trained_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of a run that uses a trained model: its stage, the images to classify, trusting its checkpoint."""
    parser.add_argument(
        "--stage",
        choices=["train", "val", "test", "predict"],
        default=None,
        help="fit (train), validate (val), test, or classify the images under --predict_dir (predict); overrides "
        "the config's stage",
    )
    parser.add_argument(
        "--predict_dir",
        "--predict-dir",
        dest="predict_dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="--stage predict: classify every TIFF/PNG/JPEG under DIR into <log_dir>/predictions.csv",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="open ckpt_path unrestricted (torch.load weights_only=False): only for a file you trust, since a "
        "checkpoint that holds Python objects runs code when opened; without it such a file is refused",
    )


def split_overrides(parser: argparse.ArgumentParser, extras: Sequence[str]) -> list[str]:
    """Turn leftover ``--a.b=c`` / ``--a.b c`` arguments (or a top-level ``--ckpt_path=...``) into ``a.b=c``
    overrides; anything else is an error."""
    overrides, items = [], list(extras)
    while items:
        item = items.pop(0)
        key = item.removeprefix("--").partition("=")[0]
        if not item.startswith("--") or ("." not in key and key not in TOP_LEVEL_KEYS):
            parser.error(
                f"unrecognized argument {item!r} (config overrides look like --trainer_config.max_epochs=3, "
                f"or --{{{','.join(sorted(TOP_LEVEL_KEYS))}}}=VALUE for the top-level keys)"
            )
        if "=" not in item:
            if not items or items[0].startswith("--"):
                parser.error(f"override {item!r} needs a value, e.g. {item}=3")
            item = f"{item}={items.pop(0)}"
        overrides.append(item.removeprefix("--"))
    return overrides


def setup_logging() -> None:
    """Plain ``message`` lines on stderr, so the guide's log lines appear exactly as written."""
    root = logging.getLogger()
    if not any(getattr(h, "_traenslenzor", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._traenslenzor = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; returns the exit status (2 for a bad config or flags, as argparse does)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    overrides = split_overrides(parser, extras)
    if args.stage is not None:
        overrides.append(f"stage={args.stage}")
    setup_logging()
    save = args.save_tuned_config
    try:
        config = load_config(args.config_path, overrides)
        if args.predict_dir is not None:
            if config.stage != "predict":
                raise ConfigError(f"--predict_dir needs --stage predict (the stage is {config.stage!r}).")
            config.predict_dir = args.predict_dir
        run_experiment(
            config,
            tune_batch_size=args.tune_batch_size,
            tune_learning_rate=args.tune_learning_rate,
            tune_only=args.tune_only,
            retune=args.retune,
            confirm_learning_rate=args.confirm_learning_rate,
            save_tuned_config=args.config_path if save is True else save,
            config_path=args.config_path,
            trust_checkpoint=args.trust_checkpoint,
        )
    except (ConfigError, CheckpointError, FileNotFoundError) as exc:  # bad config, data, weights: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
