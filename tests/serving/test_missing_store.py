"""`medpipe serve` on a registry store that is gone refuses to start, at once; it never creates an empty one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medpipe.config import ExportConfig, ServingConfig
from medpipe.errors import RegistryError
from medpipe.settings import Settings
from tests.helpers.cli import HEAVY, run_medpipe

REPO = Path(__file__).resolve().parents[2]


def test_create_app_refuses_a_missing_store(tmp_path: Path) -> None:
    from components.serving.app import create_app

    settings = Settings(home=tmp_path / "state")
    with pytest.raises(RegistryError, match="mlflow.db does not exist"):
        create_app(settings, ServingConfig(), ExportConfig(), "models:/m@champion")
    assert not (tmp_path / "state" / "mlflow.db").exists()


def test_medpipe_serve_refuses_a_missing_store(tmp_path: Path) -> None:
    """Before it imports the server's libraries: a refusal costs ~2 s of CPU here, not ~14."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDPIPE_", "MLFLOW_"))}
    env["MEDPIPE_HOME"] = str(tmp_path / "state")
    out, imported = run_medpipe(["serve", "--params", str(REPO / "params.yaml")], env=env, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    text = " ".join(out.stderr.split())
    assert "mlflow.db does not exist" in text and "Traceback" not in text
    assert not (tmp_path / "state" / "mlflow.db").exists()
    assert not imported & HEAVY, sorted(imported & HEAVY)
