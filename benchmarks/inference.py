"""ONNX Runtime vs PyTorch eager: latency p50/p99 and images/s at batch 1 and 32 (CPU, and GPU when present).

uv run python benchmarks/inference.py --model cnn --size 28 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _models import make_served_folder  # noqa: E402

from components.deploy.runtime import create_session, run_session  # noqa: E402
from components.models.artifacts import load_model_dir  # noqa: E402
from components.models.inference import InferenceModel  # noqa: E402
from medpipe.config import ExportConfig  # noqa: E402


def _time(fn, repeats: int, warmup: int = 5) -> np.ndarray:  # noqa: ANN001
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads (same for both)")
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        served = make_served_folder(Path(tmp), args.model, args.size, args.channels, seed=0)
        net, pre = load_model_dir(Path(tmp) / "model")
        model = InferenceModel(net, pre).eval()
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        print(f"model={args.model} input={args.channels}x{args.size}x{args.size} threads={args.threads}")
        header = f"{'device':6} {'batch':>5} | {'eager p50':>9} {'p99':>8} {'img/s':>9} | {'ORT p50':>9} {'p99':>8} "
        print(header + f"{'img/s':>9} | {'speed-up':>8}  provider")
        for device in devices:
            cfg = ExportConfig(
                intra_op_threads=args.threads,
                providers=["CPUExecutionProvider"] if device == "cpu" else ["CUDAExecutionProvider"],
                require_gpu=device == "cuda",
            )
            session = create_session(served / "model.onnx", cfg)
            m = model.to(device)
            for batch in (1, 32):
                x = np.random.default_rng(0).random((batch, args.channels, args.size, args.size), np.float32) * 255
                xt = torch.from_numpy(x).to(device)

                def eager(m=m, xt=xt, device=device) -> None:  # noqa: ANN001
                    with torch.inference_mode():
                        m(xt)
                    if device == "cuda":
                        torch.cuda.synchronize()

                reps = args.repeats if batch == 1 else max(20, args.repeats // 4)
                te = _time(eager, reps)
                to = _time(lambda x=x, s=session: run_session(s, x), reps)
                pe, po = np.percentile(te, [50, 99]), np.percentile(to, [50, 99])
                ips_e, ips_o = batch * 1000 / te.mean(), batch * 1000 / to.mean()
                print(
                    f"{device:6} {batch:5d} | {pe[0]:9.3f} {pe[1]:8.3f} {ips_e:9.0f} | {po[0]:9.3f} {po[1]:8.3f} "
                    f"{ips_o:9.0f} | {ips_o / ips_e:7.2f}x  {session.get_providers()[0]}"
                )


if __name__ == "__main__":
    main()
