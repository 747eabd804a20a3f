"""The layering of the package, as a path rule over every import (module-level and function-local alike):

- the tuner core (``traenslenzor/tuner/`` outside ``tuner/lightning/``) never imports Lightning;
- no tuner file imports the app (``traenslenzor.doc_classifier``);
- the app imports from the tuner only its public face, ``traenslenzor.tuner`` itself;
- ``tuner/lr/`` and ``tuner/batch/`` never import each other;
- the LR sweep (``lr/sweep.py``, ``lr/adaptive.py``) and the advice on its curve (``lr/diagnostics.py``) never
  import each other: both read the curve maths in ``lr/curve.py``;
- the tuner's modules import each other without a cycle;
- the app's rooms import only rooms below them (``APP_LAYERS``): the command line on top, the tuning workflow and
  inference beside each other, then training, the config, the data, and the backbones and helpers at the ground;
- inside the tuning workflow, the LR confirmation (``tuning/confirm/``) reads only the record, never the steps;
- the app's modules import each other without a cycle.

Imports are read with ``ast`` (nothing is executed), so a lazy import inside a function counts as much as one at
the top of the file.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "traenslenzor"
TUNER = PACKAGE / "tuner"
ADAPTER = TUNER / "lightning"
WINGS = {"lr": TUNER / "lr", "batch": TUNER / "batch"}
APP = PACKAGE / "doc_classifier"
LIGHTNING_ROOTS = {"lightning", "pytorch_lightning", "lightning_fabric"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, *, type_only: bool = True, source: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in ``path``; ``from a import b`` gives ``a`` and ``a.b``.

    ``type_only=False`` leaves out the imports under ``if TYPE_CHECKING:`` (never run, so no runtime edge).
    ``source`` reads that text as if it were the file at ``path``.
    """
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[ast.AST] = set()
    if not type_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                skipped.update(inner for stmt in node.body for inner in ast.walk(stmt))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
    return found


def python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_reader_sees_function_local_relative_and_type_only_imports():
    # The rules are only as good as the reader: a lazy import inside a function, a relative one, a type-only one.
    probe = TUNER / "lr" / "finder.py"  # any module of a wing: only its location matters for the relative import
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..batch.result import BatchSizeResult\n"
        "def f():\n    import lightning.pytorch as pl\n    from ..lightning import Tuner\n"
    )
    names = {name for _, name in imported_modules(probe, source=source)}
    assert {"lightning.pytorch", "traenslenzor.tuner.lightning", "traenslenzor.tuner.lightning.Tuner"} <= names
    assert "traenslenzor.tuner.batch.result" in names
    runtime = {name for _, name in imported_modules(probe, source=source, type_only=False)}
    assert "traenslenzor.tuner.batch.result" not in runtime
    assert "traenslenzor.tuner.lightning" in runtime


def test_only_the_adapter_imports_lightning():
    offenders = [
        f"{rel(path)}:{line} imports {name}"
        for path in python_files(TUNER)
        if ADAPTER not in path.parents
        for line, name in imported_modules(path)
        if name.split(".")[0] in LIGHTNING_ROOTS
    ]
    assert not offenders, "the tuner core must not import Lightning (move it to tuner/lightning/):\n" + "\n".join(
        offenders
    )


def test_the_adapter_is_where_lightning_is_imported():
    # Guards the rule above against a silently empty adapter folder.
    assert any(
        name.split(".")[0] in LIGHTNING_ROOTS for path in python_files(ADAPTER) for _, name in imported_modules(path)
    )


def test_the_two_wings_never_import_each_other():
    # lr/ and batch/ share only what sits at tuner/ (state, batching, torch_loop, oom); the face and the adapter
    # join them.
    offenders = [
        f"{rel(path)}:{line} imports {name}"
        for wing, folder in WINGS.items()
        for other in WINGS.keys() - {wing}
        for path in python_files(folder)
        for line, name in imported_modules(path)
        if name == f"traenslenzor.tuner.{other}" or name.startswith(f"traenslenzor.tuner.{other}.")
    ]
    assert not offenders, "tuner/lr/ and tuner/batch/ must not import each other:\n" + "\n".join(offenders)


def test_the_sweep_and_the_diagnostics_never_import_each_other():
    # The sweep's decisions and the advice both read lr/curve.py; neither depends on the other.
    sweep = {"traenslenzor.tuner.lr.sweep", "traenslenzor.tuner.lr.adaptive"}
    advice = {"traenslenzor.tuner.lr.diagnostics"}
    pairs = [(sweep, advice), (advice, sweep)]
    offenders = [
        f"{rel(path)}:{line} imports {name}"
        for importers, imported in pairs
        for path in python_files(WINGS["lr"])
        if module_name(path) in importers
        for line, name in imported_modules(path)
        if name in imported or any(name.startswith(f"{other}.") for other in imported)
    ]
    assert not offenders, "lr/sweep.py, lr/adaptive.py and lr/diagnostics.py must not import each other:\n" + (
        "\n".join(offenders)
    )
    assert {path.stem for path in python_files(WINGS["lr"])} >= {"sweep", "adaptive", "diagnostics", "curve"}


def test_the_wings_hold_their_modules():
    # Guards the rule above against an empty or renamed wing.
    assert {path.stem for path in python_files(WINGS["lr"])} >= {"finder", "result", "suggestion", "sweep"}
    assert {path.stem for path in python_files(WINGS["batch"])} >= {"finder", "result", "search", "runner"}


def test_the_tuner_never_imports_the_app():
    offenders = [
        f"{rel(path)}:{line} imports {name}"
        for path in python_files(TUNER)
        for line, name in imported_modules(path)
        if name == "traenslenzor.doc_classifier" or name.startswith("traenslenzor.doc_classifier.")
    ]
    assert not offenders, "the tuner must not import the app:\n" + "\n".join(offenders)


def test_the_app_imports_only_the_public_tuner():
    offenders = [
        f"{rel(path)}:{line} imports {name}"
        for path in python_files(APP)
        for line, name in imported_modules(path)
        # `from traenslenzor.tuner import X` reads as traenslenzor.tuner and traenslenzor.tuner.X: allowed when X
        # is a public name of the package's face, not a submodule.
        if name.startswith("traenslenzor.tuner.") and not _is_public_name(name)
    ]
    assert not offenders, "the app must import only `traenslenzor.tuner` (its public face):\n" + "\n".join(offenders)


def _is_public_name(name: str) -> bool:
    import traenslenzor.tuner as tuner

    rest = name.removeprefix("traenslenzor.tuner.")
    return "." not in rest and rest in tuner.__all__


def tuner_import_graph() -> dict[str, set[str]]:
    return import_graph(TUNER)


def import_graph(folder: Path, *, type_only: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of ``folder`` it imports (at run time only unless ``type_only``)."""
    modules = {module_name(path): path for path in python_files(folder)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for _, imported in imported_modules(path, type_only=type_only):
            # the longest known module that the imported name is or lies in
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                edges.add(imported)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_in_the_tuner():
    # Runtime imports only (type-only ones never run). A package's __init__ is not an edge target from its own
    # submodules (importing a.b runs a/__init__ first anyway), so the lazy facade `traenslenzor.tuner` does not
    # form a cycle with the modules it names.
    graph = tuner_import_graph()
    assert "traenslenzor.tuner" in graph and "traenslenzor.tuner.lightning.tuner" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in the tuner: " + " -> ".join(cycle or [])


# --- the app's rooms -----------------------------------------------------------------------------------------------

# Top to bottom: a room imports only rooms on a lower line (or itself); rooms on one line never import each other.
APP_LAYERS: list[tuple[str, ...]] = [
    ("run.py",),
    ("cli.py",),
    ("experiment.py",),
    ("tuning", "inference"),  # the tuning workflow; using a trained model (val/test evaluation, predict)
    ("training",),  # the LightningModule, the Trainer factories, the W&B run
    ("config",),  # the TOML sections; loading a file with overrides
    ("data",),
    ("models", "log.py", "atomic_file.py"),  # the backbones; the log prefixes; the atomic writer
    ("checkpoint_file.py",),  # opening checkpoints and weights files as data
]
APP_PACKAGE = "traenslenzor.doc_classifier"


def app_room(path: Path) -> str:
    """The room of an app file: its top-level file or folder under ``doc_classifier/``."""
    return path.relative_to(APP).parts[0]


def imported_room(name: str) -> str | None:
    """The app room a module name lies in; None outside the app (or for the package itself)."""
    if not name.startswith(APP_PACKAGE + "."):
        return None
    first = name.removeprefix(APP_PACKAGE + ".").split(".")[0]
    return first if (APP / first).is_dir() else f"{first}.py"


def test_every_room_of_the_app_has_a_layer():
    # A new file or folder at the app's top must be placed on a layer before the rule below says anything of it.
    placed = {room for layer in APP_LAYERS for room in layer}
    rooms = {app_room(path) for path in python_files(APP)} - {"__init__.py"}
    assert rooms <= placed, f"place these in tests/test_layering.py APP_LAYERS: {sorted(rooms - placed)}"
    assert placed <= rooms, f"APP_LAYERS names rooms the app no longer has: {sorted(placed - rooms)}"


def test_the_app_imports_point_down():
    level = {room: index for index, layer in enumerate(APP_LAYERS) for room in layer}
    offenders = []
    for path in python_files(APP):
        room = app_room(path)
        if room == "__init__.py":
            continue
        for line, name in imported_modules(path):
            target = imported_room(name)
            if target is None or target == room or target not in level:
                continue
            if level[target] <= level[room]:
                offenders.append(f"{rel(path)}:{line} imports {name} ({room} -> {target})")
    assert not offenders, "the app's imports must point down its layers (APP_LAYERS):\n" + "\n".join(offenders)


def test_the_lr_confirmation_reads_only_the_record_of_the_tuning_workflow():
    # tuning/confirm/ is the confirmation study; the workflow's steps call it, it never calls them back.
    confirm = APP / "tuning" / "confirm"
    allowed = {f"{APP_PACKAGE}.tuning.record", f"{APP_PACKAGE}.tuning.confirm"}
    offenders = [
        f"{rel(path)}:{line} imports {name}"
        for path in python_files(confirm)
        for line, name in imported_modules(path)
        if name.startswith(f"{APP_PACKAGE}.tuning.")
        and not any(name == ok or name.startswith(ok + ".") for ok in allowed)
    ]
    assert not offenders, "tuning/confirm/ may import from tuning/ only record.py:\n" + "\n".join(offenders)


def test_no_import_cycles_in_the_app():
    # Type-only imports count here: a reader follows them too (the app has no lazy face to excuse them).
    graph = import_graph(APP, type_only=True)
    assert f"{APP_PACKAGE}.tuning.workflow" in graph and f"{APP_PACKAGE}.cli" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in the app: " + " -> ".join(cycle or [])
