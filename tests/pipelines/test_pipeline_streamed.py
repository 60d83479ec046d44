"""`medpipe run --profile smoke` on a generated folder of a thousand small images with
``train.stream_above_mb`` set low: training reads shards through DataLoader workers, and the run completes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.flows import OVERRIDES, PROFILE, SERVICE_OVERRIDES
from tests.helpers.project import project_of_its_own

pytestmark = pytest.mark.slow
N_PER_CLASS = 500


@pytest.fixture(scope="module")
def streamed_project(harness: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with project_of_its_own(tmp_path_factory.mktemp("streamed")) as base:
        yield base


def _folder(root: Path) -> Path:
    """2 x 500 16 px grey PNGs; the malignant ones are brighter, so a few epochs learn them."""
    import io

    import numpy as np
    from PIL import Image

    for c, cls in enumerate(("benign", "malignant")):
        (root / cls).mkdir(parents=True)
        for i in range(N_PER_CLASS):
            rng = np.random.default_rng(c * 100_000 + i)
            img = np.clip(rng.normal(90 + 60 * c, 30, (16, 16)), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "PNG")
            (root / cls / f"img_{i:04d}.png").write_bytes(buf.getvalue())
    return root


def test_smoke_run_streams_a_generated_folder(streamed_project: Path) -> None:
    from mlflow import MlflowClient

    from medpipe.settings import get_settings
    from pipelines.full import pipeline

    folder = _folder(streamed_project / "imgs")
    extra = ["search.enabled=false", "train.epochs=2", "train.num_workers=1", "data.image_size=16", *SERVICE_OVERRIDES]
    state = pipeline(
        "params.yaml", PROFILE, [*OVERRIDES, *extra, f"data.source={folder}", "train.stream_above_mb=0"],
        return_state=True,
    )  # fmt: skip
    assert state.is_completed(), state.message
    t = state.result().training
    run = MlflowClient(tracking_uri=get_settings().tracking_uri).get_run(t.run_id)
    assert run.data.tags["medpipe.loader"] == "streamed"  # the shards were read by DataLoader workers
    assert run.data.metrics["val_auc"] > 0.8
