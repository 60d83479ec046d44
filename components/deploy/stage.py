"""The deploy stage: export -> parity gate -> (optional) quantise -> parity gate, one folder out.

The training flow calls :func:`deploy_model` on the model it trained (``dvc.yaml``'s ``train`` stage runs
that flow); the deployment flow verifies what was registered with
:func:`components.registry.redeploy.deploy_registered`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from components.data.batches import split_batches
from components.deploy.export import export_onnx
from components.deploy.parity import ParityReport, check_parity
from components.deploy.quantize import quantize_onnx
from medpipe.config import ExportConfig

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
    calibration = None
    if cfg.quantize == "int8-static":  # the first 256 training images, read without loading the split
        sample = split_batches(prepared_dir, "train", limit=256)
        calibration = sample.scatter((b.positions, b.images) for b in sample)
    quantize_onnx(out_path, candidate, cfg.quantize, calibration)
    q = check_parity(model_dir, candidate, prepared_dir, cfg)
    if not q.passed:
        return DeployResult(out_path, fp32, fp32, q)
    fp32_copy = out_path.with_name(f"{out_path.stem}.fp32.onnx")
    shutil.copy(out_path, fp32_copy)
    os.replace(candidate, out_path)
    return DeployResult(out_path, q, fp32, q)
