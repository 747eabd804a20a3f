"""The result of an LR range test: the recorded curve, how it ended, and what to read from it.

``find_lr`` and ``Tuner.lr_find`` both return an :class:`LRFinderResult`. It is immutable, saves to and loads from
JSON, and answers the questions a user asks of the curve: which LR to use (:meth:`~LRFinderResult.suggestion`),
what it looks like (:meth:`~LRFinderResult.plot`) and whether it can be trusted
(:meth:`~LRFinderResult.diagnostics`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traenslenzor.tuner.lr.settings import DEFAULT_SWEEP, StopReason, SweepSettings
from traenslenzor.tuner.lr.suggestion import SKIP_BEGIN, SKIP_END

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from traenslenzor.tuner.lr.diagnostics import Finding
    from traenslenzor.tuner.lr.suggestion import SuggestionOutcome
    from traenslenzor.tuner.lr.wall import WallReading

log = logging.getLogger(__name__)

FORMAT = "traenslenzor.lr_finder_result/2"  # /2 added probe_losses; /1 files still load (without them)
_READABLE = ("traenslenzor.lr_finder_result/1", FORMAT)
_CURVES = ("lrs", "losses", "raw_losses", "probe_losses")


def _to_json_number(value: float) -> float | None:
    # Strict JSON has no NaN/inf; a non-finite loss (the point that stopped the test) is stored as null.
    return value if math.isfinite(value) else None


def _from_json_number(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class LRFinderResult:
    """One LR range test: learning rates, smoothed and raw losses per optimizer step, and the sweep settings.

    Attributes:
        lrs: LR of the first param group at each recorded step.
        losses: bias-corrected EMA of the loss (the curve the suggestion reads).
        raw_losses: the loss of each step as measured (NaN/inf where training broke).
        min_lr, max_lr, num_training, mode, early_stop_threshold, beta: the sweep as requested
            (:attr:`settings`); ``beta`` is the EMA factor of ``losses``, which the suggestion rules read.
        stop_reason: a :class:`~traenslenzor.tuner.lr.settings.StopReason` (a ``str``: ``"completed"``,
            ``"diverged"``, ``"non_finite_loss"``) or an adapter's own reason string.
        metadata: free-form, JSON-serialisable facts about the run (optimizer, device, ...).
        probe_losses: the loss on the same few batches after each step (forward only; the curve the default
            suggestion reads, ``traenslenzor.tuner.lr.wall``); empty when the sweep measured none.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    raw_losses: tuple[float, ...]
    min_lr: float
    max_lr: float
    num_training: int
    mode: str = DEFAULT_SWEEP.mode
    early_stop_threshold: float | None = DEFAULT_SWEEP.early_stop_threshold
    beta: float = DEFAULT_SWEEP.beta
    stop_reason: StopReason | str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    probe_losses: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in _CURVES:
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if not len(self.lrs) == len(self.losses) == len(self.raw_losses):
            raise ValueError(
                f"lrs, losses and raw_losses must be equally long, got {len(self.lrs)}, {len(self.losses)} "
                f"and {len(self.raw_losses)}."
            )
        if self.probe_losses and len(self.probe_losses) != len(self.lrs):
            raise ValueError(
                f"probe_losses must be empty or as long as lrs, got {len(self.probe_losses)} and {len(self.lrs)}."
            )
        if isinstance(self.stop_reason, str) and not isinstance(self.stop_reason, StopReason):
            known = {reason.value: reason for reason in StopReason}
            object.__setattr__(self, "stop_reason", known.get(self.stop_reason, self.stop_reason))

    @property
    def settings(self) -> SweepSettings:
        """The sweep this curve was recorded with."""
        return SweepSettings(
            self.min_lr, self.max_lr, self.num_training, self.mode, self.early_stop_threshold, self.beta
        )

    # Lightning's `_LRFinder` names, so code written for Lightning's result keeps working.
    @property
    def results(self) -> dict[str, list[float]]:
        """``{"lr", "loss" (smoothed), "raw_loss"}`` (Lightning's keys, plus the raw loss) and ``"probe_loss"``
        when the sweep measured the fixed probe batches."""
        out = {"lr": list(self.lrs), "loss": list(self.losses), "raw_loss": list(self.raw_losses)}
        if self.probe_losses:
            out["probe_loss"] = list(self.probe_losses)
        return out

    def curve_for(self, method: str | None = None) -> tuple[str, tuple[float, ...]]:
        """The rule ``method`` resolves to (None: the default) and the loss curve it reads.

        The default rule (``wall``) reads the fixed-batch curve; a result without one (an old file, a sweep with
        ``probe_batches=0``) falls back to ``FALLBACK_SUGGESTION`` on the smoothed loss. ``wall`` asked for by name on
        such a result reads the raw training loss.
        """
        from traenslenzor.tuner.lr.suggestion import DEFAULT_SUGGESTION, FALLBACK_SUGGESTION, READS_PROBE

        name = method or (DEFAULT_SUGGESTION if self.probe_losses else FALLBACK_SUGGESTION)
        if name not in READS_PROBE:
            return name, self.losses
        return name, (self.probe_losses or self.raw_losses)

    def reading(self, skip_begin: int = SKIP_BEGIN, skip_end: int = SKIP_END) -> WallReading | None:
        """The wall reading of the curve the default rule reads (features, band); None when it has none."""
        from traenslenzor.tuner.lr.suggestion import DEFAULT_SUGGESTION
        from traenslenzor.tuner.lr.wall import read_curve

        _, curve = self.curve_for(DEFAULT_SUGGESTION)
        return read_curve(self.lrs, curve, skip_begin, skip_end)

    @property
    def band(self) -> tuple[float, float] | None:
        """(low, high) around the default suggestion: where a re-run would likely land; None if none.

        Built from this curve alone: the wall reading's band (its answer with the wall read at 0.1 and 0.6 of the
        fall instead of 0.25, widened by 0.15 decades for the run-to-run spread measured on the benchmarks), stretched
        to hold the ``stable`` part and the default's answer (``blend``, their middle). None when the default rule
        did not decide (a result without the fixed-batch curve).
        """
        from traenslenzor.tuner.lr.suggestion import DEFAULT_SUGGESTION

        outcome = self.suggestion_outcome()
        if outcome.method != DEFAULT_SUGGESTION or outcome.lr is None:
            return None  # the fallback decided (no probe curve, too few points): no band for its answer
        reading = self.reading()
        if reading is None:
            return None
        # the wall's band, stretched to hold the other part (stable) and the answer: both are where a re-run lands
        _, stable = self.blend_parts()
        answers = [outcome.lr, *([stable] if stable is not None else [])]
        return (min(reading.low, *answers), max(reading.high, *answers))

    @property
    def lr_min(self) -> float:
        return self.min_lr

    @property
    def lr_max(self) -> float:
        return self.max_lr

    def suggestion_outcome(
        self, skip_begin: int = SKIP_BEGIN, skip_end: int = SKIP_END, method: str | None = None
    ) -> SuggestionOutcome:
        """The full outcome of the suggestion rule ``method`` (index, LR, rule, reason when there is none)."""
        from traenslenzor.tuner.lr.suggestion import FALLBACK_SUGGESTION, suggest

        name, curve = self.curve_for(method)
        if name == "blend" and self.probe_losses:
            return self._blend_outcome(skip_begin, skip_end)
        outcome = suggest(self.lrs, curve, method=name, skip_begin=skip_begin, skip_end=skip_end, beta=self.beta)
        if method is None and outcome.index is None and name != FALLBACK_SUGGESTION:
            # the default reads nothing here (e.g. too few points for its start level): the old default decides
            fallback = suggest(
                self.lrs, self.losses, method=FALLBACK_SUGGESTION, skip_begin=skip_begin, skip_end=skip_end,
                beta=self.beta,
            )  # fmt: skip
            if fallback.index is not None:
                log.info("The %r rule read nothing (%s); the %r rule decided.", name, outcome.reason, fallback.method)
                return fallback
        return outcome

    def blend_parts(self, skip_begin: int = SKIP_BEGIN, skip_end: int = SKIP_END) -> tuple[float | None, float | None]:
        """The two readings the ``blend`` rule takes the middle of: ``wall`` on the fixed-batch curve (the raw
        training loss without one) and ``stable`` on the smoothed training loss; None where one reads nothing."""
        from traenslenzor.tuner.lr.suggestion import suggest

        kwargs = {"skip_begin": skip_begin, "skip_end": skip_end, "beta": self.beta}
        wall = suggest(self.lrs, self.probe_losses or self.raw_losses, method="wall", **kwargs)
        stable = suggest(self.lrs, self.losses, method="stable", **kwargs)
        return wall.lr, stable.lr

    def _blend_outcome(self, skip_begin: int, skip_end: int) -> SuggestionOutcome:
        """``blend`` on this result: the middle of its two parts, each read from its own curve."""
        from traenslenzor.tuner.lr.suggestion import SuggestionOutcome, log_mean

        wall, stable = self.blend_parts(skip_begin, skip_end)
        lr = log_mean(wall, stable)
        if lr is None:
            reason = "neither the wall reading nor the stable rule found an answer (e.g. the loss never fell)"
            log.debug("No learning-rate suggestion: %s", reason)
            return SuggestionOutcome(index=None, lr=None, method="blend", reason=reason)
        if wall is None or stable is None:
            log.info("The blend rule read one part only (%s); that part decided.", "stable" if wall is None else "wall")

        def distance(i: int) -> float:
            return abs(math.log(self.lrs[i] / lr)) if self.lrs[i] > 0 else math.inf

        index = min(range(len(self.lrs)), key=distance)  # the curve point nearest the answer (for the plot)
        return SuggestionOutcome(index=index, lr=lr, method="blend")

    def suggestion(
        self, skip_begin: int = SKIP_BEGIN, skip_end: int = SKIP_END, method: str | None = None
    ) -> float | None:
        """The suggested LR, or None (with the reason logged) when the curve gives none.

        Args:
            skip_begin: points ignored at the start (flat and noisy there).
            skip_end: points ignored at the end (often the blow-up); 0 keeps all.
            method: a rule of ``traenslenzor.tuner.SUGGESTIONS``; None uses ``DEFAULT_SUGGESTION`` (``wall``, on the
                fixed-batch curve; ``stable`` for a result without one, see :meth:`curve_for`).

        Raises:
            ValueError: ``method`` is not a known rule.
        """
        outcome = self.suggestion_outcome(skip_begin, skip_end, method)
        if outcome.lr is None:
            log.warning("LR finder gives no suggestion (%s): %s", outcome.method, outcome.reason)
        return outcome.lr

    def plot(
        self, suggest: bool = True, show: bool = False, ax: Axes | None = None, method: str | None = None
    ) -> Figure:
        """Plot the curve (log LR axis) with the suggestion of rule ``method`` (None: the default rule) as a red dot.

        Pass the same ``method`` as to :meth:`suggestion` so the plot marks the LR that is applied; see
        :func:`traenslenzor.tuner.lr.plot.plot_lr_finder`.
        """
        from traenslenzor.tuner.lr.plot import plot_lr_finder

        return plot_lr_finder(self, suggest=suggest, show=show, ax=ax, method=method)

    def diagnostics(self, method: str | None = None) -> list[Finding]:
        """Automatic advice on the curve (never decreased, too noisy, diverged at once, ...); empty if healthy.

        ``method`` is the suggestion rule whose answer is judged (None: the default rule).
        """
        from traenslenzor.tuner.lr.diagnostics import diagnose

        return diagnose(self, method=method)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite losses as None)."""
        data: dict[str, Any] = {"format": FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _CURVES:
                value = [_to_json_number(v) for v in value]
            elif f.name == "metadata":
                value = dict(value)
            elif f.name == "stop_reason" and value is not None:
                value = str(value)  # the enum's value: the same strings as before the enum
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LRFinderResult:
        """Rebuild a result from :meth:`to_dict` output."""
        if data.get("format", FORMAT) not in _READABLE:
            raise ValueError(f"Not an LR finder result of format {_READABLE}: format={data.get('format')!r}.")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - {"format"})
        if unknown:
            raise ValueError(f"Unknown keys {unknown} in LR finder result; expected {sorted(names)}.")
        values = {k: v for k, v in data.items() if k in names}
        for name in _CURVES:
            values[name] = tuple(_from_json_number(v) for v in values.get(name, ()))
        if "beta" not in values and "beta" in values.get("metadata", {}):
            values["beta"] = values["metadata"]["beta"]  # files written before beta was a field
        return cls(**values)

    def to_json(self, path: str | Path | None = None) -> str:
        """The result as JSON text (strict: non-finite losses as null); also written to ``path`` when given.

        The file is UTF-8 with a trailing newline; the returned text is the same without it.
        """
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> LRFinderResult:
        """Load a result written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
