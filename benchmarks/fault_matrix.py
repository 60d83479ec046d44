"""Inject the faults of issue 19 into real parts and print: fault | expected | observed | data lost.

Real uvicorn servers on 127.0.0.1, a real local webhook receiver, real SIGKILLed processes, a real
MLflow SQLite store; the `gpu`-slot row starts real Prefect temporary servers (slow: ~3-5 min on a
busy box; ``--skip-prefect`` leaves it out).

    uv run python benchmarks/fault_matrix.py [--skip-prefect]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ROWS: list[tuple[str, str, str, str]] = []


def row(fault: str, expected: str) -> Callable[[Callable[[Path], tuple[str, str]]], Callable[[Path], None]]:
    def wrap(fn: Callable[[Path], tuple[str, str]]) -> Callable[[Path], None]:
        def run(tmp: Path) -> None:
            started = time.monotonic()
            try:
                observed, lost = fn(tmp)
            except Exception as err:  # noqa: BLE001 - a fault that escapes is itself the observation
                observed, lost = f"UNEXPECTED {type(err).__name__}: {err}"[:160], "?"
            ROWS.append((fault, expected, f"{observed} [{time.monotonic() - started:.1f}s]", lost))

        return run

    return wrap


@contextlib.contextmanager
def server(app) -> Iterator[str]:  # noqa: ANN001
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    polls = Retrying(
        retry=retry_if_result(lambda started: not started),
        stop=stop_after_delay(60) | (lambda _: not thread.is_alive()),
        wait=wait_fixed(0.02),
        retry_error_callback=lambda _: False,
    )
    if not polls(lambda: srv.started):
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def app_for(folder: Path, home: Path, keys: str | None = None, **serving):  # noqa: ANN201
    from pydantic import SecretStr

    from components.serving.app import create_app
    from medpipe.config import ExportConfig, ServingConfig
    from medpipe.settings import Settings

    settings = Settings(home=home, api_keys=SecretStr(keys) if keys else None)
    cfg = ServingConfig(reload_interval_s=3600, **serving)
    return create_app(settings, cfg, ExportConfig(), str(folder)), settings


def npy_file(value: int = 0) -> list:
    buf = io.BytesIO()
    np.save(buf, np.full((28, 28), value, np.uint8))
    return [("files", (f"x{value}.npy", buf.getvalue(), "application/octet-stream"))]


MODEL: dict[str, Path] = {}


@row("API keys set, request without a key", "401 on predict/reload/feedback")
def auth_keys(tmp: Path) -> tuple[str, str]:
    app, _ = app_for(MODEL["served"], tmp / "keys", keys="k-1")
    with server(app) as url:
        codes = [
            httpx.post(f"{url}/v1/predict", files=npy_file()).status_code,
            httpx.post(f"{url}/v1/reload").status_code,
            httpx.post(f"{url}/v1/feedback", json={"request_id": "x", "label": 0}).status_code,
            httpx.post(f"{url}/v1/predict", files=npy_file(), headers={"X-API-Key": "k-1"}).status_code,
        ]
    return f"{codes[:3]} without, {codes[3]} with the key", "-"


@row("serve 0.0.0.0 with no keys, no opt-in", "refused at start")
def open_bind(tmp: Path) -> tuple[str, str]:
    from components.serving.auth import api_keys, check_bind
    from medpipe.config import ServingConfig
    from medpipe.errors import MedpipeError
    from medpipe.settings import Settings

    cfg = ServingConfig()
    try:
        check_bind("0.0.0.0", api_keys(cfg, Settings(home=tmp)), cfg)
    except MedpipeError as err:
        return f"refused: {str(err)[:60]}...", "-"
    return "SERVED OPEN", "-"


@row("inference log made read-only under load", "ready 503, buffered, 503 when full, no row lost")
def log_outage(tmp: Path) -> tuple[str, str]:
    from components.serving.inference_log import InferenceLog

    app, settings = app_for(MODEL["served"], tmp / "log", log_buffer_rows=4)
    acknowledged, observed = 0, []
    with server(app) as url:
        acknowledged += httpx.post(f"{url}/v1/predict", files=npy_file()).status_code == 200
        db = settings.inference_log
        subprocess.run(["chattr", "+i", str(db)], check=True)
        try:
            for i in range(6):
                r = httpx.post(f"{url}/v1/predict", files=npy_file(i))
                acknowledged += r.status_code == 200
                observed.append(r.status_code)
            ready = httpx.get(f"{url}/v1/ready").status_code
        finally:
            subprocess.run(["chattr", "-i", str(db)], check=True)
        acknowledged += httpx.post(f"{url}/v1/predict", files=npy_file()).status_code == 200
        ready_after = httpx.get(f"{url}/v1/ready").status_code
    rows = InferenceLog(db).count()
    return f"codes {observed}, ready {ready} -> {ready_after} after fix", f"{acknowledged - rows} of {acknowledged}"


@row("webhook answers 500, then recovers", "not in cooldown: re-sent on next check")
def failing_webhook(tmp: Path) -> tuple[str, str]:
    from medpipe.config import AlertsConfig
    from medpipe.settings import Settings
    from monitoring.alerts import send_alerts
    from monitoring.summary import DriftSummary, Signal

    failing, received = [True], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500 if failing[0] else 200)
            self.end_headers()
            if not failing[0]:
                received.append(self.path)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        os.environ["MEDPIPE_WEBHOOK_URL"] = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        settings = Settings(home=tmp / "alerts")
        os.environ.pop("MEDPIPE_WEBHOOK_URL")
        cfg = AlertsConfig.model_validate({"webhook": {"enabled": True}, "retries": 0, "cooldown_minutes": 60})
        sig = [Signal("embedding", 0.9, 0.6, True, ">")]
        summary = DriftSummary(True, "drift", sig, window_size=100, reference_size=600)
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        first = send_alerts(summary, cfg, settings, now=t0)
        failing[0] = False
        second = send_alerts(summary, cfg, settings, now=t0 + timedelta(minutes=5))
    finally:
        httpd.shutdown()
    return f"1st {first.deliveries['webhook'][:6]}, 2nd {second.action}/{second.deliveries['webhook']}", (
        "0 alerts" if received else "1 alert"
    )


@row("64 flat 4096^2 PNGs in one request", "413 request_too_many_pixels before decoding")
def amplification(tmp: Path) -> tuple[str, str]:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((4096, 4096), np.uint8)).save(buf, format="PNG", optimize=True)
    files = [("files", (f"b{i}.png", buf.getvalue(), "image/png")) for i in range(64)]
    app, _ = app_for(MODEL["served"], tmp / "amp", max_request_bytes=64 * len(buf.getvalue()) + 65536)
    with server(app) as url:
        started = time.monotonic()
        r = httpx.post(f"{url}/v1/predict", files=files, timeout=300)
        took = time.monotonic() - started
    return f"{r.status_code} {r.json().get('error')} in {took:.1f}s ({64 * len(buf.getvalue()) // 1024} KB sent)", "-"


@row("/v1/feedback index 10**30, label true, label 'cat'", "422, 422, 422 (no 500, no class 1)")
def feedback(tmp: Path) -> tuple[str, str]:
    app, _ = app_for(MODEL["served"], tmp / "fb")
    with server(app) as url:
        rid = httpx.post(f"{url}/v1/predict", files=npy_file()).json()["request_id"]
        codes = [
            httpx.post(f"{url}/v1/feedback", json={"request_id": rid, "label": 0, "index": 10**30}).status_code,
            httpx.post(f"{url}/v1/feedback", json={"request_id": rid, "label": True}).status_code,
            httpx.post(f"{url}/v1/feedback", json={"request_id": rid, "label": "cat"}).status_code,
        ]
        missing = httpx.post(f"{url}/v1/feedback", json={"request_id": "nope", "label": 0})
    leaks = str(tmp) in missing.text
    return f"{codes}; 404 text leaks the path: {leaks}", "-"


@row("serve models:/ with mlflow.db gone", "refused, no empty store created")
def missing_store(tmp: Path) -> tuple[str, str]:
    from components.serving.app import create_app
    from medpipe.config import ExportConfig, ServingConfig
    from medpipe.errors import MedpipeError
    from medpipe.settings import Settings

    try:
        create_app(Settings(home=tmp / "nostore"), ServingConfig(), ExportConfig(), "models:/m@champion")
    except MedpipeError:
        return f"refused; store created: {(tmp / 'nostore' / 'mlflow.db').exists()}", "-"
    return "STARTED", "-"


@row("-S train.lr=1e400 / epochs: true / empty params / bad cron", "4 config errors at load")
def params(tmp: Path) -> tuple[str, str]:
    from medpipe.config import ConfigError, load_config

    empty = tmp / "empty.yaml"
    empty.write_text("")
    cases = [
        (ROOT / "params.yaml", ["train.lr=1e400"]),
        (ROOT / "params.yaml", ["train.epochs=true"]),
        (empty, []),
        (ROOT / "params.yaml", ["schedule.monitoring_cron=99 * * * *"]),
    ]
    refused = 0
    for path, overrides in cases:
        try:
            load_config(path, overrides=overrides)
        except ConfigError:
            refused += 1
    return f"{refused} of {len(cases)} refused", "-"


@row("registered version whose model.pt is a pickled object", "init_weights refuses it, nothing runs")
def pickle_init(tmp: Path) -> tuple[str, str]:
    import mlflow
    import torch

    from components.models.transfer import registered_state_dict
    from medpipe.errors import RegistryError
    from medpipe.settings import Settings

    settings = Settings(home=tmp / "reg")
    settings.home.mkdir(parents=True)
    client = mlflow.MlflowClient(settings.tracking_uri, settings.registry_uri)
    exp = client.create_experiment("hostile", (tmp / "art").as_uri())
    run = client.create_run(exp)
    evil = tmp / "model.pt"
    torch.save({"net": torch.nn.Linear(2, 2)}, evil)
    client.log_artifact(run.info.run_id, str(evil), "m")
    client.create_registered_model("hostile")
    version = client.create_model_version("hostile", f"{run.info.artifact_uri}/m", run_id=run.info.run_id).version
    try:
        registered_state_dict(f"models:/hostile/{version}", settings)
    except RegistryError as err:
        return f"refused ({str(err).split(':')[-1].strip()[:40]})", "-"
    return "LOADED", "-"


@row("SIGKILL while swapping data/prepared (x8)", "old or new folder, never none")
def killed_swap(tmp: Path) -> tuple[str, str]:
    from components.data.swap import recover

    target, whole = tmp / "prepared", 0
    code = (
        "import sys; from pathlib import Path; from components.data.swap import swap_in\n"
        "t, i = Path(sys.argv[1]), 0\n"
        "while True:\n"
        "    n = t.parent / f'.{t.name}.tmp-{i}'; n.mkdir()\n"
        "    [(n / f'p{k}').write_text(str(i)) for k in range(20)]; (n / 'manifest.json').write_text(str(i))\n"
        "    swap_in(n, t); i += 1\n"
        "    if i == 1: print('go', flush=True)\n"
    )
    for attempt in range(8):
        proc = subprocess.Popen([sys.executable, "-c", code, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        time.sleep(0.013 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        recover(target)
        stamp = (target / "manifest.json").read_text()
        whole += all((target / f"p{k}").read_text() == stamp for k in range(20))
        for left in tmp.glob(".prepared.tmp-*"):
            subprocess.run(["rm", "-rf", str(left)], check=True)
    return f"{whole} of 8 complete", f"{8 - whole} folders"


def gpu_slot_row(tmp: Path) -> None:
    holder_code = (
        "import logging, sys, time\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')  # progress lines, as the CLI shows them\n"
        "from medpipe.cli.environment import prepare_environment\n"
        "from medpipe.settings import get_settings\n"
        "prepare_environment()\n"
        "from prefect import flow\n"
        "from pipelines.runtime import gpu_slot\n"
        "@flow(log_prints=True)\n"
        "def hold(block: bool):\n"
        "    with gpu_slot(get_settings()):\n"
        "        print('HOLDING', flush=True)\n"
        "        if block: time.sleep(3600)\n"
        "hold(sys.argv[1] == 'block')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MEDPIPE_"))}
    env.update(MEDPIPE_HOME=str(tmp / "slot"), MEDPIPE_GPU_LEASE_SECONDS="60", PYTHONPATH=str(ROOT))
    started = time.monotonic()
    first = subprocess.Popen(
        [sys.executable, "-c", holder_code, "block"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    for line in first.stdout:
        if "HOLDING" in line:
            break
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-c", holder_code, "free"], env=env, capture_output=True, text=True, timeout=900
    )
    out = second.stdout + second.stderr
    ok = second.returncode == 0 and "HOLDING" in out and "freed the 'gpu' slot" in out
    waited = next((line.split("waiting for")[1][:70] for line in out.splitlines() if "waiting for" in line), "")
    ROWS.append(
        (
            "SIGKILL the holder of the `gpu` slot",
            "next run says what it waits for, frees it, runs",
            f"{'ran' if ok else 'FAILED'} {time.monotonic() - killed:.0f}s after the kill; "
            f"printed 'waiting for{waited}' [{time.monotonic() - started:.0f}s]",
            "-",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-prefect", action="store_true", help="leave out the gpu-slot row (starts Prefect)")
    args = parser.parse_args()
    from _models import make_served_folder

    with tempfile.TemporaryDirectory(prefix="medpipe-faults-") as tmp:
        base = Path(tmp)
        MODEL["served"] = make_served_folder(base / "model", "cnn", 28, 1, seed=0)
        for i, check in enumerate(
            [auth_keys, open_bind, log_outage, failing_webhook, amplification, feedback, missing_store, params,
             pickle_init, killed_swap]
        ):  # fmt: skip
            (base / str(i)).mkdir()
            check(base / str(i))
        if not args.skip_prefect:
            gpu_slot_row(base / "prefect")
    widths = [max(len(r[i]) for r in [("fault", "expected", "observed", "data lost"), *ROWS]) for i in range(4)]
    header = ("fault", "expected", "observed", "data lost")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for r in ROWS:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(json.dumps({"rows": len(ROWS)}))


if __name__ == "__main__":
    main()
