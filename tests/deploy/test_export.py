"""Export + parity gate on a model trained on BreastMNIST; a broken export must fail the gate."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from components.deploy.export import META_QUANTIZE, export_onnx, preprocessing_for, read_metadata
from components.deploy.parity import check_parity
from components.deploy.runtime import DeployError, create_session, run_session, usable_providers
from components.deploy.stage import deploy_model
from medpipe.config import ExportConfig
from medpipe.imaging.preprocessing import Preprocessing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(served_cnn_dir):
    """The session's export of ``trained_cnn_dir``: export_onnx(model_dir, <folder>/model.onnx, ExportConfig())."""
    return served_cnn_dir / "model.onnx"


def test_export_is_one_checked_file_with_dynamic_batch(exported, trained_cnn_dir) -> None:
    assert sorted(p.name for p in exported.parent.iterdir()) == ["model.onnx", "preprocessing.json"]
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["pixels"]
    assert [o.name for o in proto.graph.output] == ["probabilities", "embedding"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert read_metadata(exported)[META_QUANTIZE] == "none"
    assert preprocessing_for(exported).class_names == ["malignant", "normal_or_benign"]
    session = create_session(exported, ExportConfig(intra_op_threads=1, graph_optimization="basic"))
    for n in (1, 7):
        probs, emb = run_session(session, np.random.default_rng(n).random((n, 1, 28, 28), np.float32) * 255)
        assert probs.shape == (n, 2) and emb.shape == (n, 256)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_parity_passes_on_the_test_split(exported, trained_cnn_dir, prepared_breastmnist) -> None:
    report = check_parity(trained_cnn_dir, exported, prepared_breastmnist, ExportConfig(), latency_repeats=10)
    assert report.passed, report.reason
    assert report.n_images == 156 and report.top1_agreement == 1.0 and report.max_abs_diff <= 1e-4
    assert report.provider == usable_providers()[0]
    assert set(report.latency_ms) == {"p50_b1", "p99_b1", "p50_b32", "p99_b32"}
    assert all(v > 0 for v in report.latency_ms.values())
    tags = report.as_tags()
    assert tags["parity.passed"] == "true" and float(tags["parity.max_abs_diff"]) == pytest.approx(
        report.max_abs_diff, rel=1e-2
    )
    assert {"parity.provider", "parity.latency_ms.p99_b32", "parity.top1_agreement"} <= set(tags)


def test_wrong_normalisation_fails_the_gate(trained_cnn_dir, prepared_breastmnist, tmp_path) -> None:
    # same weights, wrong mean recorded
    broken_dir = shutil.copytree(trained_cnn_dir, tmp_path / "broken")
    pre = Preprocessing.load(broken_dir)
    pre.model_copy(update={"mean": [m + 0.3 for m in pre.mean]}).save(broken_dir)
    broken = export_onnx(broken_dir, tmp_path / "broken.onnx", ExportConfig())
    report = check_parity(trained_cnn_dir, broken, prepared_breastmnist, ExportConfig(), latency_repeats=3)
    assert not report.passed
    assert "export.parity_atol" in report.reason and report.max_abs_diff > 1e-3
    assert report.as_tags()["parity.passed"] == "false"


def test_require_gpu_is_an_error_on_cpu(exported) -> None:
    if usable_providers()[0] != "CPUExecutionProvider":
        pytest.skip("a GPU provider is usable here")
    with pytest.raises(DeployError, match="require_gpu"):
        create_session(exported, ExportConfig(require_gpu=True))
    with pytest.raises(DeployError, match="not found"):
        create_session(exported.with_name("missing.onnx"), ExportConfig())


def test_int8_static_quantisation_gated_on_accuracy(trained_cnn_dir, prepared_breastmnist, tmp_path) -> None:
    result = deploy_model(
        trained_cnn_dir, tmp_path / "model.onnx", prepared_breastmnist, ExportConfig(quantize="int8-static")
    )
    q = result.quantized_report
    assert q is not None and q.quantized == "int8-static" and q.accuracy_onnx is not None
    assert result.fp32_report.passed and result.fp32_report.quantized == "none"
    assert q.passed == (q.accuracy_torch - q.accuracy_onnx <= 0.01)
    shipped = read_metadata(result.onnx_path)[META_QUANTIZE]
    assert shipped == ("int8-static" if q.passed else "none")
    strict = deploy_model(trained_cnn_dir, tmp_path / "s" / "model.onnx", prepared_breastmnist,
                          ExportConfig(quantize="int8-dynamic", max_accuracy_drop=0.0))  # fmt: skip
    sq = strict.quantized_report
    assert sq.passed == (sq.accuracy_onnx >= sq.accuracy_torch)
