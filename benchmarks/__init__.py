"""The benchmarks: scripts run as ``python -m benchmarks.<name>`` from the repository root (see docs/benchmarks.md).

``common`` (result paths, quiet logging, the JSON cache, the CPU ``Trainer``), ``oracle`` (held-out results of
training runs, cached) and ``finders`` (ours, Lightning's and torch-lr-finder's LR finders run the same way) are the
library the scripts share; ``lr_tasks`` and ``horizon_tasks`` define the tasks.
"""
