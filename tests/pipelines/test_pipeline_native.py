"""Native resolution end to end: 224 px RGB images, resnet18 with ImageNet weights from the torch hub cache (offline),
through ingest, training, export, parity, registration, the gate, a real uvicorn server (/v1/predict) and a drift
check. The "ImageNet" file is a freshly initialised resnet18 saved under the exact name torchvision expects, so
nothing downloads and the test can tell that file was the one loaded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.flows import PROFILE
from tests.helpers.project import project_of_its_own

pytestmark = pytest.mark.slow
SIZE = 224
NATIVE = [
    "search.enabled=false",
    "train.epochs=1",
    "train.batch_size=16",
    f"data.image_size={SIZE}",
    "data.channels=3",
    "model.name=resnet18",
    "model.small_input=false",
    "model.init_weights=torchvision",
    "registry.bootstrap_samples=100",
    "registry.faithfulness_images=2",  # ROAD's quality is test_faithfulness's subject; here: scored at MAX_SIDE
    "registry.min_primary=0",
    "registry.min_sensitivity=0",
    "registry.max_ece=1",
    "monitoring.min_window=10",
    "monitoring.retrain.enabled=false",
]


def scans_224(npz_path: Path, out: Path, per_class: int = 40) -> Path:
    """An ImageFolder of 224 px RGB PNGs: BreastMNIST upsampled (bicubic), two classes."""
    with np.load(npz_path) as npz:
        images, labels = npz["train_images"], npz["train_labels"].ravel()
    for cls, name in enumerate(("malignant", "benign")):
        (out / name).mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(labels == cls)[:per_class]):
            grey = Image.fromarray(images[i]).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
            grey.convert("RGB").save(out / name / f"{j:03d}.png")
    return out


@pytest.fixture(scope="module")
def native_project(harness: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("native")
    with project_of_its_own(base, TORCH_HOME=str(base / "torch")):
        yield base


def test_224px_transfer_learning_end_to_end(native_project: Path, breastmnist_npz: Path) -> None:
    from torchvision.models import ResNet18_Weights, resnet18

    from components.models.artifacts import load_model_dir
    from components.serving.app import create_app
    from medpipe.cli import app
    from medpipe.config import ExportConfig, ServingConfig
    from medpipe.imaging.preprocessing import Preprocessing
    from medpipe.settings import get_settings
    from pipelines.full import pipeline
    from tests.helpers.serving import running_server

    name = Path(urlparse(ResNet18_Weights.IMAGENET1K_V1.url).path).name
    cached = native_project / "torch" / "hub" / "checkpoints" / name
    cached.parent.mkdir(parents=True)
    torch.manual_seed(3)
    imagenet = resnet18(weights=None).state_dict()
    torch.save(imagenet, cached)
    data = scans_224(breastmnist_npz, native_project / "scans")

    state = pipeline("params.yaml", PROFILE, [*NATIVE, f"data.source={data}"], return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    t = summary.training
    assert t.parity_passed and t.champion == t.version, t.gate_reason

    # the model folder, the exported graph's record and the stored prepared data are all 224 px
    pre = Preprocessing.load(Path(t.onnx_path).parent)
    assert (pre.image_size, pre.train_image_size, pre.channels) == (SIZE, SIZE, 3)
    net, _ = load_model_dir(Path(t.model_dir))
    # ImageNet weights were the start: one epoch moves the late layers a little, the stem keeps its scale
    start, trained = imagenet["conv1.weight"], net.backbone.conv1.weight.detach()
    assert trained.shape == start.shape and torch.corrcoef(torch.stack([start.ravel(), trained.ravel()]))[0, 1] > 0.9
    assert summary.monitoring is not None  # the flow's first drift check, on the test split
    # Grad-CAM faithfulness ran on the 224 px model, its removals done at MAX_SIDE (imputation cost grows with pixels)
    from mlflow import MlflowClient

    from components.evaluation.faithfulness import MAX_SIDE

    settings = get_settings()
    client = MlflowClient(settings.tracking_uri, settings.registry_uri)
    tags = client.get_run(client.get_model_version(t.model_name, t.version).run_id).data.tags  # every explain.* figure
    assert (tags["explain.road_images"], tags["explain.road_side"]) == ("2", str(MAX_SIDE)), tags

    uri = f"models:/{t.model_name}@champion"
    scan = sorted((data / "benign").glob("*.png"))[0]
    server = create_app(settings, ServingConfig(reload_interval_s=3600.0), ExportConfig(), uri)
    with running_server(server, timeout_s=120) as url, httpx.Client(timeout=60) as client:
        resp = client.post(f"{url}/v1/predict", files={"files": (scan.name, scan.read_bytes(), "image/png")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"]["version"] == t.version
    (pred,) = body["predictions"]
    assert set(pred["probabilities"]) == {"benign", "malignant"}
    assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)

    from typer.testing import CliRunner

    args = ["monitor", "--images", str(data / "malignant"), "--json", "--no-alerts", "--model", uri]
    result = CliRunner().invoke(app, [*args, "-S", f"data.source={data}", "-S", "monitoring.min_window=10"])
    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)
    assert check["window_size"] == len(list((data / "malignant").glob("*.png")))
    assert check["model_version"] == t.version and check["status"] in {"ok", "drift"}, check
