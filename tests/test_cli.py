"""The CLI starts fast and reports bad input without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _medpipe(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medpipe", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command() -> None:
    """The Commands panel names each registered command and group (not words the description always has)."""
    from medpipe.cli import app

    out = _medpipe("--help")
    assert out.returncode == 0, out.stderr
    listed = {line.strip("│ ").split(" ", 1)[0] for line in out.stdout.split("Commands")[-1].splitlines()}
    groups = {g.name for g in app.registered_groups if g.name}  # medpipe data, registry, monitor, ...
    unnamed = [c for g in app.registered_groups if not g.name for c in g.typer_instance.registered_commands]
    merged = {c.name for c in unnamed if not c.hidden}
    assert len(groups | merged) >= 13 and (groups | merged) <= listed, sorted((groups | merged) - listed)
    assert "│ server " not in out.stdout  # the old name of `ui prefect`: still accepted, no longer listed


def test_help_does_not_import_heavy_libraries() -> None:
    """What keeps `medpipe --help` fast (timed in benchmarks/cli_startup.py, not here)."""
    heavy = "('torch', 'mlflow', 'prefect', 'dvc', 'evidently')"
    code = f"import sys; import medpipe.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout


def test_bad_override_is_a_clear_error_not_a_traceback() -> None:
    out = _medpipe("run", "-S", "train.lr=-1")
    assert out.returncode == 2
    assert "train.lr" in out.stderr and "Traceback" not in out.stderr
