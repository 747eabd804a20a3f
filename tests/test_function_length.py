"""No product function (under traenslenzor/) longer than 60 lines: past that a function is usually two things.

A function's length runs from its ``def`` (decorators excluded) to its last line, less its docstring: an
``Args:``/``Returns:`` block documents a function, it does not make it do more.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "traenslenzor"
MAX_LINES = 60


def function_lengths(source: str) -> dict[str, int]:
    """``{qualified name: lines}`` of every function and method in ``source``, docstrings not counted."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                lines = child.end_lineno - child.lineno + 1
                first = child.body[0]
                if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                    lines -= first.end_lineno - first.lineno + 1
                lengths[name] = lines
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def test_the_counter_counts_code_not_docstrings() -> None:
    source = 'def f():\n    """Doc\n\n    more doc.\n    """\n    a = 1\n    return a\n\n\n'
    source += "class C:\n    def g(self):\n        pass\n"
    assert function_lengths(source) == {"f": 3, "C.g": 2}


def test_no_product_function_is_longer_than_60_lines() -> None:
    too_long = [
        f"{path.relative_to(PACKAGE.parent)}::{name} ({lines} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, lines in function_lengths(path.read_text(encoding="utf-8")).items()
        if lines > MAX_LINES
    ]
    assert not too_long, f"split these into steps of at most {MAX_LINES} lines: {too_long}"
