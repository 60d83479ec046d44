"""What each flow hands on: small, typed, frozen summaries (no arrays). Read by the flows, the
markdown in :mod:`pipelines.summaries` and the CLI's terminal rendering."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainingSummary:
    """What the training flow hands on: small, typed, no arrays."""

    data_version: str | None
    prepared_path: str
    run_id: str
    search_run_id: str | None
    best_params: dict[str, Any]
    test_metrics: dict[str, float]  # the served graph's figures (EvaluationResult.flat()): every surface shows these
    model_dir: str
    onnx_path: str
    parity_passed: bool
    model_name: str
    version: str
    promoted: bool
    champion: str | None
    gate_reason: str
    model_card: str
    gate_markdown: str = field(repr=False, default="")
    dvc_note: str = ""  # whether dvc.lock records this run as the `train` stage, and why not
    test_cis: dict[str, tuple[float, float]] = field(default_factory=dict)
    operating_point: str = ""  # the served decision, chosen on validation
    seeds: str = ""  # train.seeds > 1: the members' test mean +- sd (components.evaluation.seeds.SeedReport.line)


@dataclass(frozen=True)
class DeploymentSummary:
    model_name: str
    version: str
    onnx_path: str
    parity: dict[str, str]
    server_reloaded: bool


@dataclass(frozen=True)
class MonitoringSummary:
    status: str  # ok | drift | not_enough_data
    drift_detected: bool
    window_size: int
    estimated_accuracy: float | None
    champion_version: str
    report_html: str | None
    report_json: str | None
    alert: str
    retrain: str  # "started (...): reason" | "not started: reason"


@dataclass(frozen=True)
class PipelineSummary:
    training: TrainingSummary
    deployment: DeploymentSummary | None
    monitoring: MonitoringSummary | None
