"""Real Prefect for the flow tests: one test harness per session, one temp git + DVC project, one full run.

The project is built by the data tests' own helper (``make_project``); its state folder (MLflow sqlite,
DVC cache and remote, models, reports) lives in a session temp folder. The whole pipeline runs once on
BreastMNIST with a shrunken smoke config (``OVERRIDES``, ``SERVICE_OVERRIDES``) and every test below reads
what that run left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.flows import OVERRIDES, PROFILE, SERVICE_OVERRIDES, FullRun, Project, write_service_overrides
from tests.helpers.project import make_project


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory, breastmnist_npz: Path) -> Iterator[Project]:
    """A temp git + DVC project (cwd) with its own MEDPIPE_HOME and PREFECT_HOME; real data, no downloads."""
    base = tmp_path_factory.mktemp("pipelines")
    root = make_project(base)
    write_service_overrides(root, SERVICE_OVERRIDES)  # not -S: the `dvc exp run` test repeats OVERRIDES only
    home = base / "state"
    (home / "prefect").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MEDPIPE_HOME", str(home))
        mp.setenv("MEDPIPE_PROJECT_DIR", str(root))
        mp.setenv("MEDPIPE_DATA_DIR", str(breastmnist_npz.parent))
        mp.setenv("MEDPIPE_OFFLINE", "1")
        mp.setenv("PREFECT_HOME", str(home / "prefect"))
        for var in ("MLFLOW_TRACKING_URI", "MEDPIPE_MLFLOW_TRACKING_URI", "MEDPIPE_DVC_REMOTE", "PREFECT_API_URL"):
            mp.delenv(var, raising=False)
        from medpipe.settings import get_settings

        get_settings.cache_clear()
        yield Project(root, home, "params.yaml")
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def harness(project: Project) -> Iterator[None]:
    """Every flow in this session runs against one temporary Prefect server (startup is slow on a busy box)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def full_run(harness: None, project: Project) -> FullRun:
    """The whole pipeline once: data -> training -> deployment -> first monitoring on the test split."""
    from pipelines.full import pipeline

    state = pipeline(project.params, PROFILE, OVERRIDES, return_state=True)
    assert state.is_completed(), f"the pipeline failed: {state.message}"
    return FullRun(state.state_details.flow_run_id, state.result())
