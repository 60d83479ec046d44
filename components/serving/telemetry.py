"""Prometheus metrics of the server (prometheus-client), one :class:`ServingMetrics` per app.

Single process: the metrics live in the app's own registry. Under ``medpipe serve --workers N`` the CLI sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start; every worker then writes its samples there and
``/metrics`` adds them up across workers (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "medpipe_http_requests", "HTTP requests by route template, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "medpipe_http_request_duration_seconds", "HTTP request latency by route template and method.",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "medpipe_inference_batch_size", "Images per ONNX Runtime call (micro-batches).",
            buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "medpipe_inference_queue_wait_seconds", "Time a request waited in the micro-batch queue.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.model_loaded = Gauge(
            "medpipe_model_loaded", "1 for the model version a worker serves now, 0 for versions it served before.",
            ["name", "version"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.reloads = Counter(
            "medpipe_model_reloads", "Model loads by result (swapped, failed).", ["result"], registry=r
        )
        self.log_failures = Counter(
            "medpipe_inference_log_write_failures", "Failed writes to the inference log (rows kept in memory).",
            registry=r,
        )  # fmt: skip
        self.log_pending = Gauge(
            "medpipe_inference_log_pending_rows", "Rows waiting in memory because the inference log is not writable.",
            multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.predictions = Counter(
            "medpipe_predictions", "Scored images by model version, predicted class, role (champion/canary/shadow).",
            ["model_version", "predicted_class", "role"], registry=r,
        )  # fmt: skip

    def observe_batch(self, size: int, waits_s: Sequence[float]) -> None:
        self.batch_size.observe(size)
        for wait in waits_s:
            self.queue_wait.observe(wait)

    def swapped(self, name: str, version: str, previous: tuple[str, str] | None) -> None:
        if previous is not None and previous != (name, version):
            self.model_loaded.labels(*previous).set(0)
        self.model_loaded.labels(name, version).set(1)
        self.reloads.labels("swapped").inc()

    def count_predictions(self, version: str, class_names: Sequence[str], decided: np.ndarray, role: str) -> None:
        """Count the served decisions (class indices, ``Preprocessing.decide``) per class."""
        counts = np.bincount(decided, minlength=len(class_names))
        for name, n in zip(class_names, counts, strict=True):
            if n:
                self.predictions.labels(version, name, role).inc(int(n))

    def process_exited(self) -> None:
        """Drop this worker's live gauges from the multiprocess files (no-op in a single process)."""
        if os.environ.get(MULTIPROC_ENV):
            multiprocess.mark_process_dead(os.getpid())

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every metric (summed over workers in multiprocess mode) and its content type."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by its route template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - start)
            self.metrics.requests.labels(route, method, str(status)).inc()
