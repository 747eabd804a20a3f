"""Plot of a batch-size search: peak memory and throughput against batch size (matplotlib imported lazily)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traenslenzor.tuner.batch.result import BatchSizeResult

_MIB = 2**20


def plot_batch_size_result(result: BatchSizeResult, ax: Any = None, show: bool = False) -> Any:
    """Draw peak memory (left axis, MiB) and samples/s (right axis) per tried size; mark the budget and the choice.

    Fitting trials are filled markers, failed ones hollow crosses at the budget line (their peak is unknown).
    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 4))
    trials = sorted(result.trials, key=lambda t: t.batch_size)
    fits = [t for t in trials if t.fits and t.peak_memory is not None]
    ax.plot(
        [t.batch_size for t in fits],
        [t.peak_memory / _MIB for t in fits],
        "o-",
        color="tab:blue",
        label="peak memory (fits)",
    )
    failed = [t for t in trials if not t.fits]
    if failed:
        level = [(t.peak_memory or result.budget or 0) / _MIB for t in failed]
        ax.plot([t.batch_size for t in failed], level, "x", color="tab:red", markersize=9, label="does not fit")
    if result.budget is not None:
        ax.axhline(result.budget / _MIB, color="tab:red", linestyle="--", linewidth=1, label="budget")
    ax.axvline(result.batch_size, color="tab:green", linewidth=1.5, label=f"chosen: {result.batch_size}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("peak memory (MiB)")
    measured = [t for t in trials if t.fits and t.samples_per_sec is not None]
    handles, labels = ax.get_legend_handles_labels()
    if measured:
        ax2 = ax.twinx()
        ax2.plot(
            [t.batch_size for t in measured],
            [t.samples_per_sec for t in measured],
            "s:",
            color="tab:orange",
            label="samples/s",
        )
        ax2.set_ylabel("samples/s")
        more_handles, more_labels = ax2.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="upper left", fontsize="small")
    ax.set_title(f"batch-size search ({result.mode}): {len(result.trials)} trials")
    if show:
        plt.show()
    return fig
