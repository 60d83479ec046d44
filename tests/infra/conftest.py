"""Fixtures for the infra/ validation tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.infra import GPU_JOB_TEMPLATE, INFRA, compose_config


@pytest.fixture(scope="session")
def compose_model() -> dict[str, Any]:
    """infra/compose.yaml as Compose resolves it with infra/.env.example."""
    result = compose_config(INFRA / ".env.example")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def gpu_job_template() -> dict[str, Any]:
    return json.loads(GPU_JOB_TEMPLATE.read_text())
