"""Serving throughput against raw ONNX Runtime, side by side in one run on one machine.

The real server (`medpipe serve`, its own processes) takes a fixed-length load from 16 concurrent clients
(async httpx, in client processes of their own); the champion is swapped half-way (model folder replaced,
`/v1/reload` + the workers' polling). For each server setting, request body and images per request it prints
HTTP images/s, the ratio to raw ONNX Runtime images/s at batch 32 (same model, measured in this run), p50/p99
latency, errors, the versions seen.

Request bodies (``--bodies``):
  npy        /v1/predict, the N images as one ``application/x-npy`` array (N, H, W): the batch body
  multipart  /v1/predict, N ``files`` parts of one .npy image each (what a browser form sends)
  v2         /v2/models/{name}/infer, the Open Inference Protocol's binary tensor extension (UINT8 [N, 1, H, W])

    uv run python benchmarks/serve_load.py --clients 16 --seconds 20
    uv run python benchmarks/serve_load.py --images-per-request 1 32 --bodies npy multipart --settings w2-b32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from tenacity import Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# name -> (uvicorn workers, ORT intra-op threads per worker (0: all cores), serving.max_batch, max_wait_ms)
SETTINGS = {
    "w1-b1": (1, 0, 1, 0.0),  # no micro-batching
    "w1-b32": (1, 0, 32, 2.0),
    "w2-b32": (2, 1, 32, 2.0),  # one process per core, one ORT thread each
    "w4-b32": (4, 1, 32, 2.0),
}


@dataclass(frozen=True)
class Server:
    proc: subprocess.Popen
    url: str
    workers: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loads(url: str) -> float:
    """Model loads counted across workers (multiprocess metrics): every worker has loaded when it reaches N."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "medpipe_model_reloads_total" and s.labels.get("result") == "swapped"
    )


def start_server(model: Path, home: Path, workers: int, threads: int, max_batch: int, max_wait_ms: float) -> Server:
    """``medpipe serve`` on a free port; returns once every worker has its model loaded."""
    port = _free_port()
    overrides = {
        "serving.max_batch": max_batch, "serving.max_wait_ms": max_wait_ms, "serving.reload_interval_s": 1,
        "serving.max_images_per_request": 64, "export.intra_op_threads": threads,
    }  # fmt: skip
    cmd = [str(Path(sys.executable).parent / "medpipe"), "serve", "--model", str(model), "--port", str(port),
           "--workers", str(workers)] + [a for k, v in overrides.items() for a in ("-S", f"{k}={v}")]  # fmt: skip
    env = {**os.environ, "MEDPIPE_HOME": str(home)}
    env.pop("MEDPIPE_API_KEYS", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # set even empty, prometheus-client writes *.db files into the cwd
    log = home / "server.log"  # a file, not a pipe: uvicorn's worker processes inherit it
    home.mkdir(parents=True, exist_ok=True)
    with log.open("w") as err:  # its own session: stop_server ends the workers with it
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    server = Server(proc, url=f"http://127.0.0.1:{port}", workers=workers)

    def ready() -> bool:
        if workers == 1:
            return httpx.get(f"{server.url}/v1/ready", timeout=2).status_code == 200
        return _loads(server.url) >= workers

    polls = Retrying(  # a loaded 2-core box takes minutes to start two workers
        retry=retry_if_result(lambda up: not up) | retry_if_exception_type(httpx.HTTPError),
        stop=stop_after_delay(300) | (lambda _: proc.poll() is not None),
        wait=wait_fixed(0.2),
        retry_error_callback=lambda _: False,
    )
    if not polls(ready):
        stop_server(server)
        raise RuntimeError(f"server did not start in 300 s: {log.read_text()[-2000:]}")
    return server


def stop_server(server: Server) -> None:
    """SIGTERM to the server's whole process group (uvicorn's workers too); SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGTERM)
    try:
        server.proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(30)


BODIES = ("npy", "multipart", "v2")


def request_spec(body: str, n_images: int, size: int, model_name: str) -> tuple[str, dict]:
    """(path, httpx ``post`` keyword arguments) of one request carrying ``n_images`` random size x size images."""
    images = np.random.default_rng(0).integers(0, 256, (n_images, size, size), dtype=np.uint8)
    if body == "npy":
        return "/v1/predict", {"content": _npy(images), "headers": {"content-type": "application/x-npy"}}
    if body == "multipart":
        return "/v1/predict", {"files": [("files", (f"x{i}.npy", _npy(im), "application/octet-stream"))
                                         for i, im in enumerate(images)]}  # fmt: skip
    if body == "v2":
        import json

        tensor = images[:, None].tobytes()
        head = json.dumps({
            "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [n_images, 1, size, size],
                        "parameters": {"binary_data_size": len(tensor)}}],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }).encode()  # fmt: skip
        headers = {"content-type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
        return f"/v2/models/{model_name}/infer", {"content": head + tensor, "headers": headers}
    raise ValueError(f"unknown body {body!r}; one of {BODIES}")


def _client_proc(url: str, spec: tuple[str, dict], conns: int, seconds: float, out: mp.Queue, go) -> None:  # noqa: ANN001
    """``conns`` concurrent connections posting for ``seconds`` from ``go``; puts (latencies ms, errors, versions,
    seconds from ``go`` to the last answer)."""

    async def run() -> tuple[list[float], int, dict[str, int], float]:
        path, kwargs = spec
        latencies, versions, errors = [], {}, 0
        limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:  # made before the clock starts
            out.put("ready")
            go.wait()
            started = time.monotonic()
            stop = started + seconds

            async def loop() -> None:
                nonlocal errors
                while True:  # at least one request per connection, however short the run
                    t0 = time.perf_counter()
                    try:
                        r = await client.post(f"{url}{path}", **kwargs)
                        ok = r.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    latencies.append((time.perf_counter() - t0) * 1000)
                    if ok:
                        v = r.headers["x-model-version"]
                        versions[v] = versions.get(v, 0) + 1
                    else:
                        errors += 1
                    if time.monotonic() >= stop:
                        return

            await asyncio.gather(*(loop() for _ in range(conns)))
        return latencies, errors, versions, time.monotonic() - started

    out.put(asyncio.run(run()))


def load(server: Server, body: str, n_images: int, args: argparse.Namespace, swap: tuple[Path, Path]) -> dict:
    """16 clients for ``args.seconds``; the model folder behind ``swap[0]`` is replaced by ``swap[1]`` half-way."""
    ctx = mp.get_context("spawn")
    out, go = ctx.Queue(), ctx.Event()
    procs = args.client_procs
    per = [args.clients // procs + (i < args.clients % procs) for i in range(procs)]
    name = httpx.get(f"{server.url}/v1/model", timeout=10).json()["name"]
    spec = request_spec(body, n_images, args.size, name)
    workers = [ctx.Process(target=_client_proc, args=(server.url, spec, c, args.seconds, out, go)) for c in per]
    for w in workers:
        w.start()
    for _ in workers:
        assert out.get(timeout=120) == "ready"
    go.set()  # every client process has started: the load and the clock start together
    time.sleep(args.seconds / 2)
    link, target = swap
    tmp_link = link.with_name(link.name + ".next")
    tmp_link.symlink_to(target, target_is_directory=True)
    os.replace(tmp_link, link)  # atomic: a reload sees the old folder or the new one, never half of one
    httpx.post(f"{server.url}/v1/reload", timeout=60)  # one worker now; the others on their next poll (1 s)
    results = [out.get(timeout=args.seconds + 120) for _ in workers]
    for w in workers:
        w.join()
    lat = np.concatenate([np.asarray(r[0]) for r in results])
    versions: dict[str, int] = {}
    for r in results:
        for v, n in r[2].items():
            versions[v] = versions.get(v, 0) + n
    ok = sum(versions.values())
    return {
        "images/s": ok * n_images / max(r[3] for r in results),  # the last answer may come after args.seconds
        "p50 ms": float(np.percentile(lat, 50)),
        "p99 ms": float(np.percentile(lat, 99)),
        "errors": sum(r[1] for r in results),
        "versions": len(versions),
    }


def raw_ort(model: Path, batch: int, seconds: float, threads: int = 0) -> float:
    """Images/s of ONNX Runtime alone (``threads`` intra-op threads, 0: all cores) at ``batch``, as the server's
    ceiling."""
    from components.deploy.runtime import create_session, run_session
    from medpipe.config import ExportConfig

    session = create_session(model / "model.onnx", ExportConfig(intra_op_threads=threads))
    shape = session.get_inputs()[0].shape
    x = (np.random.default_rng(0).random((batch, *shape[1:])) * 255).astype(np.float32)
    for _ in range(5):
        run_session(session, x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run_session(session, x)
        n += batch
    return n / (time.perf_counter() - t0)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def throughput_images(work: Path, served: Path, args: argparse.Namespace, batch: int, deadline: float) -> float:
    """HTTP images/s with ``batch`` images per request (one application/x-npy body) from ``args.clients`` clients
    (one worker, micro-batching) for ``args.seconds`` (cut to what the deadline leaves; for ``gpu_suite.py``)."""
    work.mkdir(parents=True, exist_ok=True)
    link = work / "current"
    if not link.exists():
        link.symlink_to(served, target_is_directory=True)
    server = start_server(link, work / "home", 1, 0, max(batch, 32), args.max_wait_ms)
    try:
        seconds = max(1.0, min(args.seconds, deadline - time.monotonic() - 5))
        probe = argparse.Namespace(seconds=seconds, clients=args.clients, client_procs=1, size=args.size)
        return load(server, "npy", batch, probe, (link, served))["images/s"]
    finally:
        stop_server(server)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--client-procs", type=int, default=2, help="Client processes the clients are spread over.")
    ap.add_argument("--seconds", type=float, default=20.0, help="Load length per setting (swap at half).")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--images-per-request", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--bodies", nargs="+", default=["npy"], choices=BODIES, help="Request bodies (see above).")
    ap.add_argument("--settings", nargs="+", default=["w1-b1", "w1-b32", "w2-b32"], choices=sorted(SETTINGS))
    args = ap.parse_args()
    from _models import make_served_folder

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a = make_served_folder(work / "a", args.model, args.size, 1, seed=0)
        b = make_served_folder(work / "b", args.model, args.size, 1, seed=1)
        raw = raw_ort(a, 32, 5.0)
        raw1 = raw_ort(a, 32, 5.0, threads=1)  # context: what one worker's session can do
        rows = []
        for name in args.settings:
            workers, threads, max_batch, wait = SETTINGS[name]
            for body in args.bodies:
                for n_images in args.images_per_request:
                    tag = f"{name}-{body}-{n_images}"
                    link = work / f"current-{tag}"
                    link.symlink_to(a, target_is_directory=True)
                    server = start_server(link, work / f"home-{tag}", workers, threads, max_batch, wait)
                    try:
                        r = load(server, body, n_images, args, (link, b))
                    finally:
                        stop_server(server)
                    rows.append((name, body, n_images, r))
    print(f"model={args.model} {args.size}px, {args.clients} clients in {args.client_procs} processes, "
          f"{args.seconds:.0f} s per row, champion swapped at half; {os.cpu_count()} CPUs")  # fmt: skip
    print(f"raw ONNX Runtime, batch 32, all threads: {raw:,.0f} images/s (the ratio's base); 1 thread: {raw1:,.0f}")
    head = ("body", "img/req", "images/s", "ratio", "p50 ms", "p99 ms", "errors", "versions")
    print(f"{'setting':10}" + "".join(f"{h:>{w}}" for h, w in zip(head, (10, 8, 11, 8, 9, 9, 8, 9), strict=True)))
    for name, body, n_images, r in rows:
        print(f"{name:10}{body:>10}{n_images:8d}{r['images/s']:11,.0f}{r['images/s'] / raw:8.2f}{r['p50 ms']:9.1f}"
              f"{r['p99 ms']:9.1f}{r['errors']:8d}{r['versions']:9d}")  # fmt: skip
    print("settings: w<uvicorn workers>-b<serving.max_batch>; w2/w4 run one ORT thread per worker; bodies: see --help")
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
