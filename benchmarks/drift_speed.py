"""Cost of one drift check on a 10k-row window against ONNX Runtime scoring the same 10k images, same run.

    uv run python benchmarks/drift_speed.py [--rows 10000] [--threads 2] [--epochs 2]

The quick CNN is trained briefly on BreastMNIST, exported to ONNX as deploy does, and its reference built
through the ONNX graph. ``--rows`` real images (lightly jittered) are scored by ONNX Runtime (timed: the
baseline), written to a real inference log (SQLite), then one check is timed: reading the window,
converting it, and the tests (MMD permutation test, softmax K-S/chi², image-statistics K-S with Holm).
Goal (issue 14): the check costs <= 10% of the ORT scoring time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from _models import write_prepared_breastmnist

    from components.data.dataset import load_split
    from components.serving.inference_log import InferenceLog
    from components.serving.model_source import load_model
    from medpipe.config import load_config
    from medpipe.imaging.features import image_features
    from medpipe.settings import Settings
    from monitoring.check import onnx_embed_fn
    from monitoring.drift import compute_drift
    from monitoring.reference import build_reference
    from monitoring.window import read_log_window
    from tests.helpers.artefacts import Recipe, export, train

    cfg = load_config(ROOT / "params.yaml")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepared = write_prepared_breastmnist(ROOT.parent / "shared" / "data" / "breastmnist.npz", tmp / "prep")
        model_dir = train(Recipe((f"train.epochs={args.epochs}",)), prepared, Settings(home=tmp / "train"), tmp)
        served = export(model_dir, tmp / "served")
        loaded = load_model(str(served), cfg.export, Settings(home=tmp / "state"))
        embed_fn = onnx_embed_fn(loaded)
        reference = build_reference(prepared, embed_fn, cfg.monitoring)
        pool = np.concatenate([load_split(prepared, s).images for s in ("train", "test")])
        images = pool[rng.integers(len(pool), size=args.rows)]
        images = np.clip(images.astype(np.int16) + rng.integers(-3, 4, images.shape), 0, 255).astype(np.uint8)
        embed_fn(images[:256])  # warm
        t0 = time.perf_counter()
        probs, emb = embed_fn(images)
        ort_s = time.perf_counter() - t0
        feats = image_features(images).to_dict("records")
        log = InferenceLog(tmp / "inference.db")
        log.append(
            [
                {
                    "request_id": f"r{i}",
                    "model_version": "1",
                    "predicted_class": reference.class_names[int(p.argmax())],
                    "probabilities": p.tolist(),
                    "features": feats[i],
                    "embedding": emb[i],
                }
                for i, p in enumerate(probs)
            ]
        )
        timings = []
        for attempt in ("first check in the process", "second check"):
            t0 = time.perf_counter()
            window = read_log_window(log.path, reference, None, None)
            t1 = time.perf_counter()
            summary = compute_drift(reference, window, cfg.monitoring)
            t2 = time.perf_counter()
            timings.append((attempt, len(window), t1 - t0, t2 - t1, summary.status))
    print(
        f"\n{args.rows} images, {args.threads} threads, reference {len(reference.frame)} rows, providers "
        f"{loaded.session.get_providers()}"
    )
    print(f"ONNX Runtime scoring {args.rows} images: {ort_s:.2f} s")
    print(f"{'check':<30}{'rows':>7}{'read s':>8}{'tests s':>9}{'tests/ORT':>11}{'(read+tests)/ORT':>18}{'status':>8}")
    for name, n, read_s, test_s, status in timings:
        print(
            f"{name:<30}{n:>7}{read_s:>8.2f}{test_s:>9.2f}{test_s / ort_s:>11.1%}{(read_s + test_s) / ort_s:>18.1%}"
            f"{status:>8}"
        )
    ratio = timings[-1][3] / ort_s
    print(
        f"goal: the check's tests <= 10% of the ORT scoring time: {ratio:.1%} "
        + ("(met)" if ratio <= 0.1 else "(MISSED)")
    )


if __name__ == "__main__":
    main()
