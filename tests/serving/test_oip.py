"""Open Inference Protocol (KServe v2) driven by Triton's official HTTP client against a real uvicorn server."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from components.data.dataset import load_split
from components.deploy.runtime import create_session, run_session
from components.models.inference import to_pixels
from components.serving.inference_log import InferenceLog
from medpipe.config import ExportConfig

pytestmark = pytest.mark.slow


def _infer(client: triton.InferenceServerClient, name: str, pixels: np.ndarray, binary: bool, **kw) -> dict:
    tensor = triton.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "embedding")]
    result = client.infer(name, [tensor], outputs=outputs, **kw)
    return {n: result.as_numpy(n) for n in ("probabilities", "embedding")} | {"response": result.get_response()}


def test_tritonclient_against_the_server(onnx_folder, prepared_breastmnist, serve) -> None:
    images = load_split(prepared_breastmnist, "test").images[:10]
    pixels = to_pixels(images).numpy()
    expected_probs, expected_emb = run_session(create_session(onnx_folder / "model.onnx", ExportConfig()), pixels)
    name = onnx_folder.name
    with serve(str(onnx_folder), max_images_per_request=16) as (url, settings):
        client = triton.InferenceServerClient(url=url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready()
        meta = client.get_model_metadata(name)
        version = meta["versions"][0]
        assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
        assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
            ("probabilities", "FP32", [-1, 2]),
            ("embedding", "FP32", [-1, expected_emb.shape[1]]),
            ("decision", "INT64", [-1]),
        ]
        assert client.is_model_ready(name) and client.is_model_ready(name, model_version=version)
        assert client.get_model_metadata(name, model_version=version) == meta
        assert not client.is_model_ready("other-model")

        binary = _infer(client, name, pixels, binary=True)  # Triton's binary tensor extension
        as_json = _infer(client, name, pixels, binary=False, model_version=version)  # plain JSON tensors
        for got in (binary, as_json):
            np.testing.assert_allclose(got["probabilities"], expected_probs, atol=1e-6)
            np.testing.assert_allclose(got["embedding"], expected_emb, atol=1e-5)
            assert got["response"]["model_name"] == name and got["response"]["model_version"] == version
        # no outputs named: all of them, binary (what tritonclient asks for by default)
        tensor = triton.InferInput("pixels", list(pixels[:2].shape), "FP32")
        tensor.set_data_from_numpy(pixels[:2])
        default = client.infer(name, [tensor]).as_numpy("probabilities")
        np.testing.assert_allclose(default, expected_probs[:2], atol=1e-6)

        with pytest.raises(InferenceServerException, match="model_not_found"):
            _infer(client, "other-model", pixels, binary=True)
        with pytest.raises(InferenceServerException, match="model_not_found"):
            _infer(client, name, pixels, binary=True, model_version="999")
        with pytest.raises(InferenceServerException, match=r"wrong_shape.*\[N, 1, 28, 28\]"):
            _infer(client, name, pixels[:, :, :14], binary=True)
        with pytest.raises(InferenceServerException, match="too_many_images"):
            _infer(client, name, np.concatenate([pixels, pixels]), binary=False)
        bad = triton.InferInput("image", [1, 1, 28, 28], "FP32")
        bad.set_data_from_numpy(pixels[:1])
        with pytest.raises(InferenceServerException, match="one input named 'pixels'"):
            client.infer(name, [bad])
        client.close()
    rows = InferenceLog(settings.inference_log).read_window()
    assert len(rows) == 2 * len(images) + 2  # every served image is logged; refused requests are not
    assert set(rows.model_version) == {version}
    assert "sharpness" in rows.features.iloc[0]


def test_v2_decides_with_the_stored_threshold(onnx_folder, prepared_breastmnist, serve, tmp_path) -> None:
    """``decision`` is the /v1 decision: p(malignant) >= the stored threshold, not argmax (a binary model)."""
    import shutil

    from medpipe.imaging.preprocessing import Preprocessing
    from medpipe.metrics import OperatingPoint

    pixels = to_pixels(load_split(prepared_breastmnist, "test").images[:40]).numpy()
    probs, _ = run_session(create_session(onnx_folder / "model.onnx", ExportConfig()), pixels)
    below = np.sort(probs[probs[:, 0] < 0.5, 0])
    threshold = float(below[len(below) // 2])  # some images above it are "not malignant" by argmax
    folder = tmp_path / onnx_folder.name
    shutil.copytree(onnx_folder, folder)
    pre = Preprocessing.load(folder)
    op = OperatingPoint(rule="sensitivity", target=0.9, positive_class=pre.class_names[0], positive_index=0,
                        threshold=threshold)  # fmt: skip
    pre.model_copy(update={"operating_point": op}).save(folder)
    expected = np.where(probs[:, 0] >= threshold, 0, 1)
    assert (expected != probs.argmax(1)).any()
    with serve(str(folder)) as (url, _):
        client = triton.InferenceServerClient(url=url.removeprefix("http://"))
        params = client.get_model_metadata(folder.name)["parameters"]
        assert params["threshold"] == pytest.approx(threshold) and params["positive_class"] == pre.class_names[0]
        for binary in (True, False):
            tensor = triton.InferInput("pixels", list(pixels.shape), "FP32")
            tensor.set_data_from_numpy(pixels, binary_data=binary)
            wanted = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "decision")]
            result = client.infer(folder.name, [tensor], outputs=wanted)
            np.testing.assert_array_equal(result.as_numpy("decision"), expected)
            assert result.get_response()["parameters"]["threshold"] == pytest.approx(threshold)
        client.close()
