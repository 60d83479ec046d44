"""Seconds for one drift check over 10k logged rows (goal < 10 s on 2 cores).

    uv run python benchmarks/drift_speed.py [--rows 10000] [--threads 2]

Writes ``--rows`` predictions (real BreastMNIST images, lightly jittered, through a small CNN) to a real
inference log (SQLite), then times: reading the window, converting it, and the Evidently check.
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
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from _models import quick_embed_fn, write_prepared_breastmnist

    from components.data.dataset import load_split
    from components.serving.inference_log import InferenceLog
    from medpipe.config import load_config
    from monitoring.drift import compute_drift
    from monitoring.features import image_features
    from monitoring.reference import build_reference
    from monitoring.window import read_log_window

    cfg = load_config(ROOT / "params.yaml").monitoring
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = write_prepared_breastmnist(ROOT.parent / "shared" / "data" / "breastmnist.npz", Path(tmp) / "prep")
        embed_fn = quick_embed_fn(prepared, epochs=1)
        reference = build_reference(prepared, embed_fn, cfg)
        pool = np.concatenate([load_split(prepared, s).images for s in ("test", "val")])
        images = pool[rng.integers(len(pool), size=args.rows)]
        images = np.clip(images.astype(np.int16) + rng.integers(-3, 4, images.shape), 0, 255).astype(np.uint8)
        probs, emb = embed_fn(images)
        feats = image_features(images).to_dict("records")
        log = InferenceLog(Path(tmp) / "inference.db")
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
        for attempt in ("cold (first check in the process)", "warm"):
            t0 = time.perf_counter()
            window = read_log_window(log.path, reference, None, None)
            t1 = time.perf_counter()
            summary = compute_drift(reference, window, cfg)
            t2 = time.perf_counter()
            timings.append((attempt, len(window), t1 - t0, t2 - t1, t2 - t0, summary.drift_detected))
    print(f"\n{args.rows} logged rows, {args.threads} threads, reference {len(reference.frame)} rows")
    print(f"{'check':<36}{'rows':>7}{'read s':>8}{'drift s':>9}{'total s':>9}{'drift?':>8}")
    for name, n, read_s, drift_s, total, drift in timings:
        print(f"{name:<36}{n:>7}{read_s:>8.2f}{drift_s:>9.2f}{total:>9.2f}{drift!s:>8}")
    print("goal: < 10 s per check " + ("(met)" if timings[-1][4] < 10 else "(MISSED)"))
    sys.exit(0 if timings[-1][4] < 10 else 1)


if __name__ == "__main__":
    main()
