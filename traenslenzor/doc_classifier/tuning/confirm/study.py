"""The LR confirmation's Optuna study: its SQLite file, its trials, and the rungs run through it.

One study per fingerprint (``trials.py`` names it); each trial is one (candidate, rung) training, its params
``lr`` (a categorical over the plan's candidates) and ``rung``, its value the last validation loss, its curve
reported step by step (``trial.report``) and kept as a user attribute for the plot. Which trials run is decided
by the core's rung schedule (synchronous successive halving: ``survivors`` of each rung go on, the finder's LR
always among them), so a resumed study runs exactly the trials that are missing. Nothing here knows Lightning: the
training is a function passed in, given the candidate and its rung (which says whether the run continues).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traenslenzor.doc_classifier.config import ConfigError
from traenslenzor.doc_classifier.log import say
from traenslenzor.tuner import ConfirmPlan, Rung, survivors

_OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})
_SQLITE_MAGIC = b"SQLite format 3\x00"


class ConfirmStudyError(ConfigError):
    """The study's database cannot be used (corrupt, foreign, another Optuna schema); it is left untouched."""


@dataclass(frozen=True)
class TrialCurve:
    """One trial's training: validation loss at each checked step, the final loss, and the steps it ran."""

    curve: tuple[tuple[int, float], ...]
    loss: float  # the last validation loss; inf when training broke (NaN) or never validated
    steps: int  # optimizer steps this trial trained (a continued run: the extra ones)


@dataclass(frozen=True)
class TrialRecord:
    """A completed (candidate, rung) trial of the study."""

    lr: float
    rung: int
    loss: float
    steps: int
    curve: tuple[tuple[int, float], ...]
    number: int
    reused: bool  # completed by an earlier run


# --- the database------------------------------------------------


def check_database(path: Path) -> None:
    """Raise :class:`ConfirmStudyError` unless ``path`` is missing, empty, or an SQLite file with Optuna's tables.

    Read-only: a file that is not ours is never opened for writing (Optuna would add its tables to it).
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    fix = "it was left as it is; move it away (or delete it) to start a new study"
    with path.open("rb") as handle:
        if handle.read(16) != _SQLITE_MAGIC:
            raise ConfirmStudyError(f"{path} is not an SQLite database (corrupt?); {fix}.")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ConfirmStudyError(f"{path} cannot be read as an SQLite database ({exc}); {fix}.") from None
    tables = {row[0] for row in rows}
    if tables and not tables.issuperset(_OPTUNA_TABLES):
        shown = ", ".join(sorted(tables)[:5])
        raise ConfirmStudyError(f"{path} is an SQLite database of something else (tables: {shown}); {fix}.")


def open_study(path: Path, name: str, *, fresh: bool = False) -> Any:
    """The study ``name`` in ``path`` (created when missing), after :func:`check_database`; ``fresh`` deletes that
    one study first (its trials are trained again; the file and its other studies stay)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    check_database(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
        if fresh and name in {summary.study_name for summary in optuna.get_all_study_summaries(storage)}:
            say("Re-tuning the confirmed learning rate (--retune): study %s starts again.", name)
            optuna.delete_study(study_name=name, storage=storage)
        return optuna.create_study(storage=storage, study_name=name, direction="minimize", load_if_exists=True)
    except (SQLAlchemyError, RuntimeError) as exc:  # RuntimeError: a schema of another Optuna version
        raise ConfirmStudyError(
            f"{path} cannot be used as Optuna storage ({type(exc).__name__}: {str(exc).splitlines()[0]}); it was "
            "left as it is; move it away (or delete it) to start a new study."
        ) from None


def fail_interrupted(study: Any) -> int:
    """Mark the trials an interrupted run left RUNNING (or enqueued, WAITING) as failed; returns how many.

    One process owns the study (the confirmation refuses DDP), so a RUNNING trial at the start of a run is one
    whose run stopped mid-trial.
    """
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    for _ in range(waiting):
        study.tell(study.ask(), state=TrialState.FAIL)
    if stale:
        say("  %d trial(s) of an interrupted run are trained again (study %s).", len(stale), study.study_name)
    return len(stale) + waiting


def completed_trials(study: Any, plan: ConfirmPlan) -> dict[tuple[int, float], TrialRecord]:
    """``{(rung, lr): record}`` of the study's completed trials (a candidate matched by value)."""
    from optuna.trial import TrialState

    found = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        lr = next((c for c in plan.candidates if math.isclose(c, trial.params.get("lr", -1.0))), None)
        if lr is None or "rung" not in trial.params:
            continue
        curve = tuple((int(s), math.inf if v is None else float(v)) for s, v in trial.user_attrs.get("curve", []))
        steps = int(trial.user_attrs.get("trained_steps", 0))
        found[(int(trial.params["rung"]), lr)] = TrialRecord(lr, int(trial.params["rung"]), trial.value, steps, curve,
                                                             trial.number, reused=True)  # fmt: skip
    return found


Train = Callable[[float, Rung], TrialCurve]


def run_trial(study: Any, plan: ConfirmPlan, rung: int, lr: float, train: Train) -> TrialRecord:
    """Train one (candidate, rung) trial and store it; an interrupt or error marks it failed and re-raises."""
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState

    distributions = {"lr": CategoricalDistribution(plan.candidates), "rung": IntDistribution(0, len(plan.rungs) - 1)}
    study.enqueue_trial({"lr": lr, "rung": rung})
    trial = study.ask(distributions)
    try:
        result = train(lr, plan.rungs[rung])
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    for step, loss in result.curve:
        if math.isfinite(loss):
            trial.report(loss, step)
    curve = [[step, loss if math.isfinite(loss) else None] for step, loss in result.curve]
    trial.set_user_attr("curve", curve)
    trial.set_user_attr("trained_steps", result.steps)
    loss = result.loss if math.isfinite(result.loss) else math.inf
    study.tell(trial, loss)
    return TrialRecord(lr, rung, loss, result.steps, result.curve, trial.number, reused=False)


def run_rungs(
    study: Any, plan: ConfirmPlan, train: Train, progress: Any = None
) -> tuple[dict[float, float], tuple[TrialRecord, ...]]:
    """Successive halving through the plan's rungs, reusing completed trials; (the last rung's losses, the trials)."""
    done = completed_trials(study, plan)
    losses: dict[float, float] = dict.fromkeys(plan.candidates, 0.0)  # rung 0: every candidate goes on
    trials = []
    for index, rung in enumerate(plan.rungs):
        alive, losses = survivors(losses, rung.trials, plan.incumbent), {}
        for lr in alive:
            record = done.get((index, lr))
            if record is None:
                if progress is not None:
                    progress.set_postfix_str(f"rung {index + 1}/{len(plan.rungs)}, lr {lr:.2e}, {rung.steps} steps")
                record = run_trial(study, plan, index, lr, train)
            if progress is not None:
                progress.update(1)
            losses[lr] = record.loss
            trials.append(record)
    return losses, tuple(trials)
