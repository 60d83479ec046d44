"""Monitoring under Prefect: a shifted window of images starts a retraining flow run; an iid window does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.flows import PROFILE, RETRAIN_OVERRIDES, FullRun, Project, flow_runs_named, prefect_client

pytestmark = pytest.mark.slow


def _write_pngs(images: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img[..., 0]).save(folder / f"img_{i:04d}.png")
    return folder


def _drift_training_runs(client) -> list:
    return [r for r in flow_runs_named(client, "training") if str(r.parameters.get("reason", "")).startswith("drift")]


def test_shifted_window_starts_retraining_and_iid_window_does_not(
    full_run: FullRun, project: Project, tmp_path: Path
) -> None:
    from components.data.dataset import load_split
    from pipelines.monitoring_flow import monitoring_flow

    test = load_split(Path(full_run.summary.training.prepared_path), "test").images  # (156, 28, 28, 1) uint8
    iid = _write_pngs(test, tmp_path / "iid")
    brighter = np.clip(test.astype(np.float32) * 1.3, 0, 255).astype(np.uint8)  # brightness +30%
    shifted = _write_pngs(brighter, tmp_path / "shifted")
    # no cooldown left over from other tests; retraining itself shrunk to one epoch without search
    overrides = [*RETRAIN_OVERRIDES, "monitoring.retrain.cooldown_hours=0"]

    calm = monitoring_flow(project.params, PROFILE, overrides, images_dir=str(iid))
    assert calm.status == "ok" and not calm.drift_detected and calm.window_size == len(test)
    assert calm.retrain == "not started: no drift"
    with prefect_client() as client:
        assert _drift_training_runs(client) == []

    state = monitoring_flow(project.params, PROFILE, overrides, images_dir=str(shifted), return_state=True)
    assert state.is_completed(), state.message
    alarm = state.result()
    assert alarm.drift_detected and alarm.status == "drift"
    assert alarm.retrain.startswith("started"), alarm.retrain
    with prefect_client() as client:
        (retrain,) = _drift_training_runs(client)
        assert retrain.parent_task_run_id is not None  # a subflow of this monitoring run
        parent_task = client.read_task_run(retrain.parent_task_run_id)
        assert parent_task.flow_run_id == state.state_details.flow_run_id
        assert retrain.state.is_completed()
