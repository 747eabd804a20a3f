"""The users' guide entry point: ``python traenslenzor/doc_classifier/run.py --config_path <toml> [flags]``.

Thin on purpose: it makes the package importable when run as a script from a checkout that is not installed,
then hands over to ``traenslenzor.doc_classifier.cli.main``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script, Python puts this file's folder first on sys.path, where config/, models/, data/ ...
    # would shadow same-named top-level modules. Put the repository root there instead.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parents[1]))

from traenslenzor.doc_classifier.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
