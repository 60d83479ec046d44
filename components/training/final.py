"""Search then train: the one path from a config to a trained model that the CLI (``medpipe train --direct``,
the DVC ``train`` stage) and the training flow all take."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from components.data.dataset import PreparedData
from components.training import mlflow_log as ml
from components.training.search import run_search
from components.training.train import TrainResult, train_model
from medpipe.config import PipelineConfig
from medpipe.settings import Settings


def train_best(cfg: PipelineConfig, prepared: PreparedData, settings: Settings, *, out_dir: Path) -> TrainResult:
    """Search (if ``search.enabled``), then retrain with the best params on train (early-stopped on val); the
    final run is a child of the search's parent run. Test figures come from the exported graph's evaluation."""
    if not cfg.search.enabled:
        return train_model(cfg, prepared, settings, out_dir=out_dir)
    found = run_search(cfg, prepared, settings)
    final_cfg = cfg.with_overrides(found.best_params)
    result = train_model(final_cfg, prepared, settings, out_dir=out_dir, parent_run_id=found.parent_run_id)
    client = ml.client_for(settings)
    ml.set_tags(client, found.parent_run_id, {"medpipe.final_run_id": result.run_id})
    return dataclasses.replace(result, best_params=found.best_params, search_run_id=found.parent_run_id)
