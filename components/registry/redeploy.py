"""Verify a registered version as it will be served: its own ONNX graph against its own weights."""

from __future__ import annotations

from pathlib import Path

from components.deploy.parity import check_parity
from components.deploy.stage import ONNX_NAME, DeployResult
from components.models.artifacts import CHECKPOINT, is_model_dir
from components.registry.register import PARITY_TAG
from components.registry.store import download_version, resolve_version
from components.tracking import mlflow_client, version_tags
from medpipe.config import ExportConfig
from medpipe.errors import GateError
from medpipe.settings import Settings


def deploy_registered(model_uri: str, prepared_dir: Path, cfg: ExportConfig, settings: Settings) -> DeployResult:
    """Verify a registered version as it will be served: its own ``model.onnx`` against its own weights
    (``model.ckpt``, or a legacy version's ``model.pt``) on the current test split; the version is tagged with the
    report.

    Nothing is exported again and nothing is unpickled: the graph checked is the graph the server loads.
    """
    mv = resolve_version(model_uri, settings)
    folder = download_version(mv.name, str(mv.version), settings)
    missing = [f for f in (ONNX_NAME,) if not (folder / f).is_file()] + ([] if is_model_dir(folder) else [CHECKPOINT])
    if missing:
        raise GateError(
            f"{model_uri} lacks {', '.join(missing)}: it was not registered by medpipe; deploy its model folder"
        )
    report = check_parity(folder, folder / ONNX_NAME, prepared_dir, cfg)
    client = mlflow_client(settings)
    tags = {**report.as_tags(), PARITY_TAG: str(report.passed).lower()}
    for key, value in version_tags(tags, "").items():  # the verdict and max |Δprob|; the rest is in the card
        client.set_model_version_tag(mv.name, str(mv.version), key, value)
    return DeployResult(folder / ONNX_NAME, report, report)
