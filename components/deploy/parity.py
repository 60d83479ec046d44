"""The parity gate: ONNX Runtime vs the PyTorch model on the whole test split.

fp32 passes when max |Δprob| <= ``export.parity_atol`` and top-1 agrees on every image. A quantised
graph (fp16/int8) cannot meet that tolerance; it passes when its test accuracy is at most
``export.max_accuracy_drop`` below the PyTorch model's. Latency p50/p99 at batch 1 and 32 is measured
on the provider that really ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from components.data.batches import SplitBatches, split_batches
from components.deploy.export import META_QUANTIZE, read_metadata
from components.deploy.runtime import active_provider, create_session, run_session
from components.models.artifacts import load_model_dir
from components.models.inference import InferenceModel, to_pixels
from medpipe.config import ExportConfig


@dataclass(frozen=True)
class ParityReport:
    passed: bool
    max_abs_diff: float
    top1_agreement: float
    n_images: int
    provider: str
    latency_ms: dict[str, float]  # p50_b1, p99_b1, p50_b32, p99_b32
    reason: str | None = None
    quantized: str = "none"
    accuracy_torch: float | None = None
    accuracy_onnx: float | None = None

    def as_tags(self) -> dict[str, str]:
        """Flat string tags for an MLflow model version (``parity.passed``, ``parity.max_abs_diff``, ...)."""
        tags = {
            "parity.passed": str(self.passed).lower(),
            "parity.max_abs_diff": f"{self.max_abs_diff:.3g}",
            "parity.top1_agreement": f"{self.top1_agreement:.6g}",
            "parity.n_images": str(self.n_images),
            "parity.provider": self.provider,
            "parity.quantized": self.quantized,
            "parity.reason": self.reason or "",
        }
        tags |= {f"parity.latency_ms.{k}": f"{v:.4g}" for k, v in self.latency_ms.items()}
        if self.accuracy_torch is not None:
            tags["parity.accuracy_torch"] = f"{self.accuracy_torch:.6g}"
            tags["parity.accuracy_onnx"] = f"{self.accuracy_onnx:.6g}"
        return tags

    def to_json(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_json(cls, path: Path) -> ParityReport:
        return cls(**json.loads(Path(path).read_text()))


LATENCY_BUDGET_S = 2.0  # per batch size: a large graph on a slow CPU stops early instead of taking minutes
MIN_LATENCY_RUNS = 2


def measure_latency(
    session: ort.InferenceSession,
    shape: tuple[int, int, int],
    batch: int,
    repeats: int,
    warmup: int = 3,
    budget_s: float = LATENCY_BUDGET_S,
) -> tuple[float, float]:
    """(p50, p99) milliseconds of one ``session.run`` on a random (batch, *shape) input.

    ``repeats`` timed runs after ``warmup`` untimed ones, cut short once ``budget_s`` is spent (at least one warmup
    and ``MIN_LATENCY_RUNS`` timed runs always happen): a 224 px ResNet at batch 32 costs about a second a run on
    a CPU core, and the gate's parity check should not spend a minute on its latency line.
    """
    x = (np.random.default_rng(0).random((batch, *shape), dtype=np.float32) * 255.0).astype(np.float32)
    deadline = time.perf_counter() + budget_s
    for i in range(warmup):
        if i and time.perf_counter() > deadline:
            break
        run_session(session, x)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < min(MIN_LATENCY_RUNS, repeats) or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        run_session(session, x)
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


PARITY_BATCH = 64


@torch.inference_mode()
def _both(model: InferenceModel, session: ort.InferenceSession, batches: SplitBatches) -> Iterator[tuple]:
    """``(positions, (2, n, K) probabilities of PyTorch and ONNX Runtime)`` per batch."""
    for b in batches:
        pixels = to_pixels(b.images)
        p_torch = model(pixels)[0].double().numpy()
        p_onnx = run_session(session, pixels.numpy())[0].astype(np.float64)
        yield b.positions, np.stack([p_torch, p_onnx], axis=1)


def check_parity(
    model_dir: Path, onnx_path: Path, prepared_dir: Path, cfg: ExportConfig, latency_repeats: int = 50
) -> ParityReport:
    """Compare ORT on ``onnx_path`` with the PyTorch model in ``model_dir`` on every test image."""
    net, pre = load_model_dir(Path(model_dir))
    test = split_batches(Path(prepared_dir), "test", batch_size=PARITY_BATCH)  # streamed: one batch in memory
    model = InferenceModel(net, pre).eval()
    session = create_session(Path(onnx_path), cfg)
    torch_probs, onnx_probs = test.scatter(_both(model, session, test)).transpose(1, 0, 2)
    quantized = read_metadata(Path(onnx_path)).get(META_QUANTIZE, "none")

    max_diff = float(np.abs(onnx_probs.astype(np.float64) - torch_probs).max())
    agreement = float((onnx_probs.argmax(1) == torch_probs.argmax(1)).mean())
    acc_t = float((torch_probs.argmax(1) == test.labels).mean())
    acc_o = float((onnx_probs.argmax(1) == test.labels).mean())
    n_images = len(test)
    if quantized == "none":
        failures = []
        if not max_diff <= cfg.parity_atol:
            failures.append(f"max |Δprob| {max_diff:.3g} > export.parity_atol {cfg.parity_atol:g}")
        if agreement < 1.0:
            failures.append(f"top-1 differs on {round((1 - agreement) * n_images)} of {n_images} test images")
    else:
        drop = acc_t - acc_o
        failures = (
            [f"{quantized} accuracy drop {drop:.4f} > export.max_accuracy_drop {cfg.max_accuracy_drop:g}"]
            if drop > cfg.max_accuracy_drop
            else []
        )
    height, width, channels = test.image_shape
    shape = (channels, height, width)
    p50_1, p99_1 = measure_latency(session, shape, 1, latency_repeats)
    p50_32, p99_32 = measure_latency(session, shape, 32, max(5, latency_repeats // 5))
    return ParityReport(
        passed=not failures,
        max_abs_diff=max_diff,
        top1_agreement=agreement,
        n_images=n_images,
        provider=active_provider(session),
        latency_ms={"p50_b1": p50_1, "p99_b1": p99_1, "p50_b32": p50_32, "p99_b32": p99_32},
        reason="; ".join(failures) or None,
        quantized=quantized,
        accuracy_torch=acc_t,
        accuracy_onnx=acc_o,
    )
