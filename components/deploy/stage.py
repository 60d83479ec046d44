"""The deploy stage: export -> parity gate -> (optional) quantise -> parity gate, one folder out.

``python -m components.deploy.stage export`` is the DVC stage: it reads ``data/models/current`` and
``data/prepared``, writes ``data/models/current/model.onnx`` and ``data/metrics/parity.json``, and exits
non-zero when the shipped graph fails its gate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from components.data.dataset import load_split
from components.deploy.export import export_onnx
from components.deploy.parity import ParityReport, check_parity
from components.deploy.quantize import quantize_onnx
from components.errors import GateError
from medpipe.config import ExportConfig
from medpipe.settings import Settings

ONNX_NAME = "model.onnx"


@dataclass(frozen=True)
class DeployResult:
    onnx_path: Path  # the graph to ship (fp32, or the quantised one when it passed)
    report: ParityReport  # the shipped graph's report
    fp32_report: ParityReport
    quantized_report: ParityReport | None = None  # the candidate, passed or not

    @property
    def passed(self) -> bool:
        return self.report.passed


def deploy_model(model_dir: Path, out_path: Path, prepared_dir: Path, cfg: ExportConfig) -> DeployResult:
    """Export ``model_dir`` to ``out_path`` and gate it; with ``cfg.quantize`` also try the quantised graph.

    A quantised graph replaces the fp32 one at ``out_path`` only when its own gate passes.
    """
    out_path = Path(out_path)
    export_onnx(model_dir, out_path, cfg)
    fp32 = check_parity(model_dir, out_path, prepared_dir, cfg)
    if cfg.quantize == "none" or not fp32.passed:
        return DeployResult(out_path, fp32, fp32)
    candidate = out_path.with_name(f"{out_path.stem}.{cfg.quantize}.onnx")
    calibration = load_split(prepared_dir, "train").images[:256] if cfg.quantize == "int8-static" else None
    quantize_onnx(out_path, candidate, cfg.quantize, calibration)
    q = check_parity(model_dir, candidate, prepared_dir, cfg)
    if not q.passed:
        return DeployResult(out_path, fp32, fp32, q)
    fp32_copy = out_path.with_name(f"{out_path.stem}.fp32.onnx")
    shutil.copy(out_path, fp32_copy)
    os.replace(candidate, out_path)
    return DeployResult(out_path, q, fp32, q)


def deploy_registered(model_uri: str, prepared_dir: Path, cfg: ExportConfig, settings: Settings) -> DeployResult:
    """Re-export a registered version from its PyTorch flavour, gate it, and tag the version with the report."""
    import json
    import tempfile

    import mlflow.pytorch

    from components.models.artifacts import MODEL_CONFIG, save_model_dir
    from components.preprocessing import Preprocessing
    from components.serving.model_source import _download, _registry_version
    from components.tracking import mlflow_client, use_tracking_store

    mv = _registry_version(model_uri, settings)
    folder = _download(mv.name, str(mv.version), settings)
    if not (folder / MODEL_CONFIG).is_file():
        raise GateError(f"{model_uri} has no {MODEL_CONFIG}: it was not registered by medpipe; deploy its model folder")
    use_tracking_store(settings)
    net = mlflow.pytorch.load_model(str(folder), map_location="cpu").eval()
    work = Path(tempfile.mkdtemp(prefix="deploy-", dir=settings.home))
    model_dir = save_model_dir(
        work / "model", net, json.loads((folder / MODEL_CONFIG).read_text()), Preprocessing.load(folder)
    )
    result = deploy_model(model_dir, work / "onnx" / ONNX_NAME, prepared_dir, cfg)
    client = mlflow_client(settings)
    for key, value in result.report.as_tags().items():
        client.set_model_version_tag(mv.name, str(mv.version), key, value)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=["export"])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--model-dir", type=Path, default=Path("data/models/current"))
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--out", type=Path, default=Path("data/models/onnx") / ONNX_NAME)
    parser.add_argument("--metrics", type=Path, default=Path("data/metrics/parity.json"))
    args = parser.parse_args(argv)

    from medpipe.config import load_config

    cfg = load_config(args.params).export
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = deploy_model(args.model_dir, args.out, args.prepared, cfg)
    result.report.to_json(args.metrics)
    if result.quantized_report is not None and not result.quantized_report.passed:
        print(f"quantised graph rejected, shipping fp32: {result.quantized_report.reason}", file=sys.stderr)
    if not result.passed:
        raise GateError(f"parity gate failed for {args.model_dir}: {result.report.reason}")
    print(f"exported {result.onnx_path}: parity passed (max |Δprob| {result.report.max_abs_diff:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
