"""Variance across seeds (``train.seeds: N``): each member's exported graph, evaluated exactly as the model is.

Every member is exported to ONNX, gets its own operating point on validation and is scored on test by
:func:`~components.evaluation.evaluate.evaluate_served`: the same one evaluation as the registered model. The
member figures (with their 95% CIs) land on each member's MLflow run (``test_*``, ``evaluation/``); their mean and
sample standard deviation land on the ``seeds`` run and the model's run as ``seeds_*`` metrics, which the model
card's "Variance across seeds" section and the terminal summary read.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.deploy.export import export_onnx
from components.evaluation.evaluate import EvaluationResult, evaluate_served
from components.evaluation.outputs import log_to_run
from components.evaluation.served import stamp_operating_point
from components.training import mlflow_log as ml
from components.training.train import TrainResult
from medpipe.config import ExportConfig, RegistryConfig, TrainConfig
from medpipe.metrics import SEED_FIGURES, SEED_PREFIX


@dataclass(frozen=True)
class SeedReport:
    seeds: list[int]
    run_ids: list[str]
    members: list[EvaluationResult]  # member i's served graph on test, at its own operating point
    ensemble: bool  # the registered model is the members' ensemble (else member 1)

    def mean_sd(self) -> dict[str, tuple[float, float]]:
        """``metric -> (mean, sample sd)`` over the members (sd nan for one member)."""
        out = {}
        for key in SEED_FIGURES:
            vals = np.array([m.metrics.get(key, math.nan) for m in self.members], dtype=float)
            out[key] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else math.nan)
        return out

    def flat(self) -> dict[str, float]:
        """``seeds_n``, ``seeds_<m>_mean``/``_sd`` and per member ``seeds_member<i>_<m>`` (+ ``_ci_low``/``_ci_high``)
        and ``seeds_member<i>_seed`` / ``_threshold``: MLflow metrics, read back by the model card."""
        out: dict[str, float] = {f"{SEED_PREFIX}n": float(len(self.members))}
        for key, (mean, sd) in self.mean_sd().items():
            out[f"{SEED_PREFIX}{key}_mean"] = mean
            if not math.isnan(sd):
                out[f"{SEED_PREFIX}{key}_sd"] = sd
        for i, (seed, m) in enumerate(zip(self.seeds, self.members, strict=True), start=1):
            tag = f"{SEED_PREFIX}member{i}_"
            out[f"{tag}seed"] = float(seed)
            if m.operating_point.threshold is not None:
                out[f"{tag}threshold"] = float(m.operating_point.threshold)
            for key in SEED_FIGURES:
                out[f"{tag}{key}"] = m.metrics.get(key, math.nan)
                lo, hi = m.cis.get(key, (math.nan, math.nan))
                out[f"{tag}{key}_ci_low"], out[f"{tag}{key}_ci_high"] = lo, hi
        return {k: v for k, v in out.items() if not math.isnan(v)}

    def line(self) -> str:
        """One terminal line: ``3 seeds (42..44), served graphs on test: AUC .9050 ± .0061, ...``."""
        figs = ", ".join(f"{k} {mean:.4f} ± {sd:.4f}" for k, (mean, sd) in self.mean_sd().items())
        model = "registered: their ensemble" if self.ensemble else f"registered: seed {self.seeds[0]}"
        return f"{len(self.seeds)} seeds ({self.seeds[0]}..{self.seeds[-1]}), members on test: {figs} ({model})"

    def member_lines(self) -> list[str]:
        """One line per member: its served graph's test figures with 95% CIs at its own operating point."""
        lines = []
        for i, (seed, m) in enumerate(zip(self.seeds, self.members, strict=True), start=1):
            figs = ", ".join(f"{k} {m.metrics[k]:.4f} [{m.cis[k][0]:.4f}, {m.cis[k][1]:.4f}]" for k in SEED_FIGURES)
            lines.append(f"member {i} (seed {seed}): {figs} at {m.operating_point.describe()}")
        return lines

    def rows(self) -> list[dict[str, Any]]:
        """One row per member: seed, run, threshold, each figure with its 95% CI."""
        rows = []
        for seed, run_id, m in zip(self.seeds, self.run_ids, self.members, strict=True):
            row: dict[str, Any] = {"seed": seed, "run_id": run_id, "threshold": m.operating_point.threshold}
            for key in SEED_FIGURES:
                row[key] = m.metrics.get(key)
                row[f"{key}_ci"] = list(m.cis.get(key, (math.nan, math.nan)))
            rows.append(row)
        return rows


def evaluate_members(
    trained: TrainResult,
    prepared_dir: Path,
    *,
    registry: RegistryConfig,
    export: ExportConfig,
    train: TrainConfig,
) -> SeedReport | None:
    """Export, choose the operating point and evaluate each member of ``trained`` (None for a one-seed run);
    member i was trained with seed ``train.seed + i``."""
    if not trained.members:
        return None
    results = []
    with tempfile.TemporaryDirectory(prefix="medpipe-seeds-") as tmp:
        for i, member in enumerate(trained.members):
            onnx_path = export_onnx(member.model_dir, Path(tmp) / f"seed-{i}" / "model.onnx", export)
            stamp_operating_point(onnx_path, prepared_dir, registry, export)
            results.append(evaluate_served(onnx_path, prepared_dir, registry=registry, export=export))
    seeds = [train.seed + i for i in range(len(results))]
    return SeedReport(seeds, [m.run_id for m in trained.members], results, trained.is_ensemble)


def log_seed_report(settings: Any, trained: TrainResult, report: SeedReport | None) -> None:
    """Each member's figures on its own run; mean +- sd (``seeds_*``) and ``seeds/members.json`` on the seeds run
    and on the model's run (they differ when the model is the first member)."""
    if report is None:
        return
    client = ml.client_for(settings)
    for run_id, result in zip(report.run_ids, report.members, strict=True):
        log_to_run(settings, run_id, result)
    flat = report.flat()
    table = json.dumps({"members": report.rows(), "mean_sd": report.mean_sd()}, indent=2, default=str)
    for run_id in dict.fromkeys([trained.seeds_run_id, trained.run_id]):
        if run_id:
            ml.log_metrics(client, run_id, flat)
            client.log_text(run_id, table + "\n", "seeds/members.json")
