"""`medpipe serve` on a registry store that is gone refuses to start; it never creates an empty one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medpipe.config import ExportConfig, ServingConfig
from medpipe.errors import RegistryError
from medpipe.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_create_app_refuses_a_missing_store(tmp_path: Path) -> None:
    from components.serving.app import create_app

    settings = Settings(home=tmp_path / "state")
    with pytest.raises(RegistryError, match="mlflow.db does not exist"):
        create_app(settings, ServingConfig(), ExportConfig(), "models:/m@champion")
    assert not (tmp_path / "state" / "mlflow.db").exists()


def test_medpipe_serve_refuses_a_missing_store(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDPIPE_", "MLFLOW_"))}
    env["MEDPIPE_HOME"] = str(tmp_path / "state")
    cmd = [sys.executable, "-m", "medpipe", "serve", "--params", str(REPO / "params.yaml")]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 2, out.stdout + out.stderr
    text = " ".join(out.stderr.split())
    assert "mlflow.db does not exist" in text and "Traceback" not in text
    assert not (tmp_path / "state" / "mlflow.db").exists()
