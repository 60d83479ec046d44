"""The gate's evidence: a registered version's ONNX flavour evaluated on the current test set, and the paired
comparison of challenger and champion on the same images. No model is unpickled: only ``model.onnx`` and
``preprocessing.json`` of a version are read."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from components.evaluation.evaluate import BOOTSTRAP_SEED, EvaluationResult, evaluate_served
from medpipe.config import ExportConfig, RegistryConfig
from medpipe.errors import GateError
from medpipe.imaging.preprocessing import FILENAME as PREPROCESSING_FILE
from medpipe.metrics import PairedComparison, paired_auc_difference

ONNX_FILE = "model.onnx"


def download_served(client: Any, name: str, version: str, dest: Path) -> Path:
    """``model.onnx`` + ``preprocessing.json`` of ``name`` v``version`` into ``dest``; returns the graph's path."""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    repo = ModelsArtifactRepository(f"models:/{name}/{version}")
    files = {Path(f.path).name for f in repo.list_artifacts("")}
    if ONNX_FILE not in files:
        raise GateError(
            f"{name} v{version} has no ONNX flavour ({ONNX_FILE}); the gate evaluates the served graph only. "
            f"Export and register it again (`medpipe run`, or `medpipe deploy` then `medpipe registry register`)"
        )
    for file in (ONNX_FILE, PREPROCESSING_FILE):
        repo.download_artifacts(file, dst_path=str(dest))
    return Path(dest) / ONNX_FILE


def evaluate_version(
    client: Any, name: str, version: str, prepared_dir: Path, *, registry: RegistryConfig, export: ExportConfig
) -> EvaluationResult:
    """The one evaluation (:func:`evaluate_served`) of a registered version's served graph on ``prepared_dir``."""
    tmp = Path(tempfile.mkdtemp(prefix="medpipe-gate-"))
    try:
        graph = download_served(client, name, version, tmp)
        return evaluate_served(graph, prepared_dir, registry=registry, export=export)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(challenger: EvaluationResult, champion: EvaluationResult, registry: RegistryConfig) -> PairedComparison:
    """Paired bootstrap (``registry.bootstrap_samples``) of AUC(challenger) - AUC(champion) on the same test images."""
    if challenger.test_set != champion.test_set:
        raise GateError(f"challenger and champion were scored on different images: {challenger.test_set} vs "
                        f"{champion.test_set}")  # fmt: skip
    if challenger.class_names != champion.class_names:
        raise GateError(
            f"the champion has classes {champion.class_names}, the challenger {challenger.class_names}: the gate "
            "cannot compare them; promote manually with `medpipe registry promote VERSION --reason TEXT`"
        )
    return paired_auc_difference(
        challenger.probs, champion.probs, challenger.labels, challenger.positive,
        registry.bootstrap_samples, BOOTSTRAP_SEED,
    )  # fmt: skip
