"""The tests' own rules, checked on their source: helpers are imported from tests.helpers (never from a conftest
module, never through sys.path), and no test sleeps to synchronise (tests.helpers.wait.wait_until, on tenacity,
waits on a named condition with a deadline)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _sources() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(TESTS)), ast.parse(p.read_text())) for p in sorted(TESTS.rglob("*.py"))]


def _calls(tree: ast.Module) -> set[str]:
    """Dotted names of the functions called in ``tree`` (``time.sleep``, ``sys.path.insert``, ...)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts, f = [], node.func
            while isinstance(f, ast.Attribute):
                parts.append(f.attr)
                f = f.value
            if isinstance(f, ast.Name):
                found.add(".".join([f.id, *reversed(parts)]))
    return found


def test_helpers_are_imported_from_tests_helpers_only() -> None:
    bad = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            modules += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            bad += [f"{name}: imports {m}" for m in modules if m == "conftest" or m.endswith(".conftest")]
        bad += [f"{name}: sys.path.{c.split('.')[-1]}" for c in _calls(tree) if c.startswith("sys.path.")]
    assert bad == []


def test_no_sleep_anywhere() -> None:
    bad = [
        f"{name}: {call}"
        for name, tree in _sources()
        for call in _calls(tree)
        if call in ("time.sleep", "asyncio.sleep", "sleep")
    ]
    assert bad == []


def test_the_checks_see_what_they_look_for() -> None:
    tree = ast.parse("import time, sys\nfrom tests.x.conftest import f\ntime.sleep(1)\nsys.path.insert(0, 'x')\n")
    assert {"time.sleep", "sys.path.insert"} <= _calls(tree)
