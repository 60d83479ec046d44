"""Load test of the real server: uvicorn on 127.0.0.1 (own process), 16 concurrent clients, a fixed number of
requests, and a champion swap in the middle. Run once without and once with micro-batching, side by side.

    uv run python benchmarks/serve_load.py --requests 800 --clients 16
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _serve(uri: str, home: str, port: int, max_batch: int, max_wait_ms: float) -> None:
    import uvicorn

    from components.serving.app import create_app
    from medpipe.config import ExportConfig, ServingConfig
    from medpipe.settings import Settings

    cfg = ServingConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, reload_interval_s=3600)
    app = create_app(Settings(home=Path(home)), cfg, ExportConfig(), uri)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(uri: Path, home: Path, max_batch: int, max_wait_ms: float) -> tuple[mp.Process, str]:
    """The real app under uvicorn in its own process; returns once ``/v1/ready`` answers 200."""
    port = _free_port()
    proc = mp.get_context("spawn").Process(target=_serve, args=(str(uri), str(home), port, max_batch, max_wait_ms))
    proc.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not proc.is_alive():
            proc.terminate()
            raise RuntimeError("server did not become ready")
        time.sleep(0.2)


def throughput_images(work: Path, served: Path, args: argparse.Namespace, batch: int, deadline: float) -> float:
    """Images/s through ``/v1/predict`` with ``batch`` images per request from ``args.clients`` clients."""
    work.mkdir(parents=True, exist_ok=True)
    proc, url = start_server(served, work / "home", batch, args.max_wait_ms)
    buf = io.BytesIO()
    np.save(buf, (np.random.default_rng(0).random((args.size, args.size)) * 255).astype(np.uint8))
    files = [("files", (f"x{i}.npy", buf.getvalue(), "application/octet-stream")) for i in range(batch)]
    sent = [0]
    lock = threading.Lock()

    def client() -> int:
        done = 0
        with httpx.Client(timeout=120) as c:
            while time.monotonic() < deadline:
                with lock:
                    if sent[0] >= args.requests:
                        break
                    sent[0] += 1
                c.post(f"{url}/v1/predict", files=files).raise_for_status()
                done += batch
        return done

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            images = sum(pool.map(lambda _: client(), range(args.clients)))
        return images / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.join(10)


def run_load(work: Path, a: Path, b: Path, args: argparse.Namespace, max_batch: int) -> dict[str, float]:
    current = work / f"current-{max_batch}"
    current.symlink_to(a, target_is_directory=True)
    proc, url = start_server(current, work / f"home-{max_batch}", max_batch, args.max_wait_ms)
    try:
        buf = io.BytesIO()
        np.save(buf, (np.random.default_rng(0).random((args.size, args.size)) * 255).astype(np.uint8))
        payload = buf.getvalue()
        latencies, errors, versions = [], 0, {}
        lock = threading.Lock()
        sent = [0]
        swapped = threading.Event()

        def client() -> None:
            nonlocal errors
            with httpx.Client(timeout=60) as c:
                while True:
                    with lock:
                        if sent[0] >= args.requests:
                            return
                        sent[0] += 1
                        if sent[0] == args.requests // 2:
                            swapped.set()
                    t0 = time.perf_counter()
                    try:
                        r = c.post(f"{url}/v1/predict", files=[("files", ("x.npy", payload, "x"))])
                        ok = r.status_code == 200
                        v = r.json()["model"]["version"] if ok else None
                    except httpx.HTTPError:
                        ok, v = False, None
                    dt = (time.perf_counter() - t0) * 1000
                    with lock:
                        latencies.append(dt)
                        errors += not ok
                        versions[v] = versions.get(v, 0) + 1

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            futures = [pool.submit(client) for _ in range(args.clients)]
            swapped.wait()
            nxt = work / f"next-{max_batch}"
            nxt.symlink_to(b, target_is_directory=True)
            os.replace(nxt, current)
            httpx.post(f"{url}/v1/reload", timeout=60).raise_for_status()
            for f in futures:
                f.result()
        wall = time.perf_counter() - t0
        info = httpx.get(f"{url}/v1/model").json()
    finally:
        proc.terminate()
        proc.join(10)
    lat = np.array(latencies)
    return {
        "req/s": len(lat) / wall,
        "p50 ms": float(np.percentile(lat, 50)),
        "p99 ms": float(np.percentile(lat, 99)),
        "errors": errors,
        "versions": len([v for v in versions if v]),
        "mean batch": info["mean_batch_size"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=800)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    args = ap.parse_args()
    from _models import make_served_folder

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a = make_served_folder(work / "a", args.model, args.size, 1, seed=0)
        b = make_served_folder(work / "b", args.model, args.size, 1, seed=1)
        rows = {f"max_batch={mb}": run_load(work, a, b, args, mb) for mb in (1, args.max_batch)}
    print(f"{args.requests} requests, {args.clients} clients, model={args.model} {args.size}px, swap at 50%")
    keys = list(next(iter(rows.values())))
    print(f"{'':16}" + "".join(f"{k:>12}" for k in keys))
    for name, r in rows.items():
        print(f"{name:16}" + "".join(f"{r[k]:12.2f}" if isinstance(r[k], float) else f"{r[k]:12d}" for k in keys))
    base, mb = rows["max_batch=1"], rows[f"max_batch={args.max_batch}"]
    print(f"micro-batching throughput ratio: {mb['req/s'] / base['req/s']:.2f}x")


if __name__ == "__main__":
    main()
