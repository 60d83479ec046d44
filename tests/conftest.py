"""Shared fixtures: real data, an isolated state folder, and a prepared BreastMNIST."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDPIPE_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
BREASTMNIST = SHARED_DATA / "breastmnist.npz"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the end-to-end flow tests last: they share one session-wide Prefect harness and project
    (cwd, MEDPIPE_*/PREFECT_HOME env) that must not leak into the other tests."""
    items.sort(key=lambda item: "/tests/pipelines/" in item.path.as_posix())


_SESSION_MLFLOW_ENV = {
    var: os.environ.get(var)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
}


@pytest.fixture(autouse=True)
def _restore_mlflow_uri_env() -> Iterator[None]:
    """``mlflow.set_tracking_uri``/``set_experiment`` also write MLFLOW_TRACKING_URI/MLFLOW_EXPERIMENT_ID into
    os.environ (and a module global), which later code prefers: undo that after each test so one test's store
    and experiment never become the next one's (back to the session's values, not the per-test ones: a module or
    session fixture that ran mlflow.set_experiment before this test must not leak into later modules)."""
    from tests.helpers.artefacts import mlflow_uri_env_kept

    with mlflow_uri_env_kept(_SESSION_MLFLOW_ENV):
        yield


@pytest.fixture(scope="session")
def breastmnist_npz() -> Path:
    if not BREASTMNIST.is_file():
        pytest.skip(f"real data {BREASTMNIST} not present (expected ../shared/data beside the checkout)")
    return BREASTMNIST


@pytest.fixture
def medpipe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated MEDPIPE_HOME (and no tracking URI leaking in from the environment)."""
    from medpipe.settings import get_settings

    home = tmp_path / "state"
    monkeypatch.setenv("MEDPIPE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("PREFECT_HOME", raising=False)  # an entry point (prepare_environment) may have set it
    monkeypatch.delenv("MEDPIPE_MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prepared_breastmnist(breastmnist_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BreastMNIST in the canonical prepared layout (session-wide, read-only for tests)."""
    from tests.helpers.data import write_prepared_breastmnist

    return write_prepared_breastmnist(breastmnist_npz, tmp_path_factory.mktemp("prepared"))


# --- models made by the real train and export stages (tests/helpers/artefacts.py), once per recipe per session ---
@pytest.fixture(scope="session")
def engine_settings(tmp_path_factory: pytest.TempPathFactory, empty_mlflow_db: Callable[[Path], str]):
    """The state folder the session's test models are trained in (run folders and an MLflow store of its own)."""
    from medpipe.settings import Settings

    home = tmp_path_factory.mktemp("engine-home")
    return Settings(home=home, mlflow_tracking_uri=empty_mlflow_db(home))


@pytest.fixture(scope="session")
def trained_cnn(
    prepared_breastmnist: Path, engine_settings, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """``trained_cnn(recipe)`` -> the model folder that ``train_model`` (the train stage) writes for ``recipe``
    (default ``GOOD``), trained the first time a recipe is asked for and shared after that. Read-only: copy it
    before changing anything in it."""
    from tests.helpers.artefacts import GOOD, Recipe, mlflow_uri_env_kept, train

    cache: dict[Recipe, Path] = {}

    def get(recipe: Recipe = GOOD) -> Path:
        if recipe not in cache:
            with mlflow_uri_env_kept():  # training sets the engine's store as the process's: not the test's
                cache[recipe] = train(recipe, prepared_breastmnist, engine_settings, tmp_path_factory.mktemp("cnn"))
        return cache[recipe]

    return get


@pytest.fixture(scope="session")
def served_cnn(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """``served_cnn(model_dir)`` -> its ONNX export folder (model.onnx + preprocessing.json), exported once per
    model folder. Read-only: copy it before changing anything in it."""
    from tests.helpers.artefacts import export

    cache: dict[Path, Path] = {}

    def get(model_dir: Path) -> Path:
        if model_dir not in cache:
            cache[model_dir] = export(model_dir, tmp_path_factory.mktemp("served"))
        return cache[model_dir]

    return get


@pytest.fixture(scope="session")
def trained_cnn_dir(trained_cnn: Callable[..., Path]) -> Path:
    """The ``GOOD`` model folder (smoke profile, 4 epochs; test AUC ~0.82; read-only)."""
    return trained_cnn()


@pytest.fixture(scope="session")
def served_cnn_dir(served_cnn: Callable[[Path], Path], trained_cnn_dir: Path) -> Path:
    """:func:`trained_cnn_dir` exported to ONNX: a servable folder (model.onnx + preprocessing.json, read-only)."""
    return served_cnn(trained_cnn_dir)


# --- MLflow: a new sqlite store costs 5-15 s of schema migrations here; a copy of a migrated one, milliseconds ---
@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], str]:
    """``empty_mlflow_db(folder)`` writes a new, empty MLflow store to ``folder/mlflow.db``; returns its sqlite URI.

    The store is a copy of one migrated once per session, minus its Default experiment, which MLflow re-creates
    when the copy is first opened (with that process's artifact root), exactly as for a store created from scratch.
    """
    template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"

    def make(folder: Path) -> str:
        if not template.is_file():
            from mlflow.tracking import MlflowClient

            MlflowClient(f"sqlite:///{template}").search_experiments()  # creates and migrates every table
            with sqlite3.connect(template) as db:
                db.execute("DELETE FROM experiments")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, folder / "mlflow.db")
        return f"sqlite:///{folder / 'mlflow.db'}"

    return make
