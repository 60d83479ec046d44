"""`medpipe run --data X` alone, on datasets that are not BreastMNIST: a binary CSV with other class names, a
5-class RGB folder and a DICOM folder (patient-disjoint splits, no PHI in any store). Each run completes with a
champion; a dataset whose class list differs from the registered model's fails before any training."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.datasets import binary_csv, dicom_folder, five_class_rgb_folder
from tests.helpers.dicom import PATIENT_ID_PREFIX, PATIENT_NAME_PREFIX
from tests.helpers.flows import OVERRIDES, PROFILE, SERVICE_OVERRIDES, champion_version, child_flow_runs, prefect_client
from tests.helpers.project import project_of_its_own

pytestmark = pytest.mark.slow
FAST = [*OVERRIDES, *SERVICE_OVERRIDES, "search.enabled=false", "train.epochs=3", "data.min_images_per_class=5"]


@pytest.fixture(scope="module")
def own_project(harness: None, tmp_path_factory: pytest.TempPathFactory, breastmnist_npz: Path) -> Iterator[Path]:
    """A project (cwd, state folder) of its own, so these runs never touch the BreastMNIST project's data."""
    with project_of_its_own(tmp_path_factory.mktemp("your-data")) as base:
        yield base


def run(data: Path, *extra: str):
    from pipelines.full import pipeline

    return pipeline("params.yaml", PROFILE, [*FAST, f"data.source={data}", *extra], return_state=True)


def test_binary_csv_with_other_class_names(own_project: Path, breastmnist_npz: Path) -> None:
    csv = binary_csv(breastmnist_npz, own_project / "derm")
    state = run(csv)
    assert state.is_completed(), state.message
    t = state.result().training
    assert t.model_name == "derm-classifier" and t.champion == t.version, t.gate_reason  # named after the data
    assert champion_version("derm-classifier") == t.champion
    card = Path(t.model_card).read_text()
    assert "lesion" in card and "clear" in card


def test_five_class_rgb_folder(own_project: Path, breastmnist_npz: Path) -> None:
    folder = five_class_rgb_folder(breastmnist_npz, own_project / "tints")
    state = run(folder, "data.channels=3", "train.epochs=10", "train.lr=0.005")
    assert state.is_completed(), state.message
    t = state.result().training
    assert t.model_name == "tints-classifier" and t.champion == t.version, t.gate_reason
    assert t.test_metrics["auc"] > 0.8  # macro one-vs-rest AUC: the tint is easy to learn


def test_a_different_class_list_fails_before_training_and_is_not_retried(
    own_project: Path, breastmnist_npz: Path
) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from components.registry.preflight import CLASS_NAMES_TAG
    from components.tracking import mlflow_client
    from medpipe.settings import get_settings

    folder = own_project / "tints"  # 5 classes (built by the previous test), under a binary model's name
    if not folder.is_dir():
        five_class_rgb_folder(breastmnist_npz, folder)
    client = mlflow_client(get_settings())
    if not client.search_registered_models("name='derm-classifier'"):
        client.create_registered_model("derm-classifier", tags={CLASS_NAMES_TAG: '["clear", "lesion"]'})
    before = len(client.search_model_versions("name='derm-classifier'"))
    started = time.monotonic()
    state = run(folder, "data.channels=3", "registry.model_name=derm-classifier")
    elapsed = time.monotonic() - started
    assert state.is_failed()
    assert "stage 'preflight' failed" in state.message and "['clear', 'lesion']" in state.message
    assert "['tint0', 'tint1', 'tint2', 'tint3', 'tint4']" in state.message
    assert len(client.search_model_versions("name='derm-classifier'")) == before  # nothing registered
    with prefect_client() as pc:
        training = child_flow_runs(pc, state.state_details.flow_run_id)["training"]
        runs = pc.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[training.id])))
    by_name = {r.name.rsplit("-", 1)[0]: r for r in runs}
    assert by_name["pre-flight-checks"].run_count == 1  # deterministic: failed once, no retry
    assert not {"hpo-search", "final-training"} & set(by_name), sorted(by_name)  # nothing trained
    assert elapsed < 120, elapsed


def test_dicom_folder_patient_disjoint_and_no_phi(own_project: Path, breastmnist_npz: Path) -> None:
    from components.data.dataset import read_manifest
    from medpipe.settings import get_settings

    folder = dicom_folder(breastmnist_npz, own_project / "dicom")
    # the subject is the splits and the PHI scan: a few smoke epochs on this small set can miss the 0.2 ECE floor
    # (0.26 once in a full run), which would keep the version out of @champion and is not what is tested here
    state = run(folder, "registry.max_ece=0.5")
    assert state.is_completed(), state.message
    t = state.result().training
    assert t.model_name == "dicom-classifier" and t.champion == t.version, t.gate_reason
    manifest = read_manifest(Path(t.prepared_path))
    groups = manifest["groups"]
    assert manifest["split"]["strategy"] == "stratified-group"
    split_of = {}
    for split, keys in groups.items():
        for g in keys:
            assert split_of.setdefault(g, split) == split, f"patient {g} in two splits"
    assert len(split_of) == 50 and all(g.startswith("patient-") for g in split_of)

    settings = get_settings()
    phi = [PATIENT_NAME_PREFIX.encode(), PATIENT_ID_PREFIX.encode(), b"St Secret Hospital", b"19700101"]
    raw_stores = {settings.dvc_cache_dir, Path(settings.dvc_remote_url)}  # the ingested source files themselves
    scanned = 0
    for store in (own_project / "project" / "data", settings.home):
        for path in Path(store).rglob("*"):
            if not path.is_file() or "raw" in path.relative_to(store).parts[:1]:
                continue
            if any(path.is_relative_to(r) for r in raw_stores):
                continue
            blob = path.read_bytes()
            scanned += 1
            for needle in phi:
                assert needle not in blob, f"PHI {needle!r} found in {path}"
    assert scanned > 20  # manifests, shards, MLflow db + artifacts, reports, Evidently workspace, model cards
