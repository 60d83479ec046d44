"""Inference-log writes that never fail silently.

A write that fails (read-only file, full disk, a lock held past the timeout) keeps its rows in a bounded
in-memory buffer, makes the server not ready (``/v1/ready`` answers 503 with the cause) and counts the
failure in ``medpipe_inference_log_write_failures``. Every later write retries the buffered rows first,
and so does the reload poller, so an idle server recovers on its own. Once the buffer is full, requests
are refused with 503 ``inference_log_unavailable``: a prediction that cannot be logged is not served,
and monitoring cannot go blind unnoticed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from components.serving.images import InputError
from components.serving.inference_log import InferenceLog
from components.serving.telemetry import ServingMetrics

log = logging.getLogger("medpipe.serving")


class BufferedLogWriter:
    """Append rows to ``inference_log``; hold up to ``capacity`` rows in memory while it cannot be written."""

    def __init__(self, inference_log: InferenceLog, capacity: int, metrics: ServingMetrics) -> None:
        self.inference_log, self.capacity, self.metrics = inference_log, capacity, metrics
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Write the buffered rows and ``rows`` in one transaction; on failure buffer ``rows`` if they fit,
        else raise :class:`InputError` 503 (the caller must not answer the prediction)."""
        with self._lock:
            if self._flush_locked(rows):
                return
            if len(self._pending) + len(rows) > self.capacity:
                raise InputError(
                    503,
                    "inference_log_unavailable",
                    f"the inference log cannot be written ({self.error}) and {len(self._pending)} rows already wait "
                    f"in memory (serving.log_buffer_rows={self.capacity}); fix the log's storage and retry",
                )
            self._pending.extend(rows)
            self.metrics.log_pending.set(len(self._pending))

    def flush(self) -> bool:
        """Retry the buffered rows now; True when nothing waits any more."""
        with self._lock:
            return not self._pending or self._flush_locked([])

    def _flush_locked(self, rows: list[dict[str, Any]]) -> bool:
        batch = self._pending + rows
        try:
            self.inference_log.append(batch)
        except Exception as err:  # noqa: BLE001 - any storage failure: buffered, reported, made visible
            first = self.error is None
            self.error = f"{type(err).__name__}: {err}"
            self.metrics.log_failures.inc()
            (log.error if first else log.warning)(
                "inference log %s not writable (%s); %d rows buffered", self.inference_log.path, self.error, len(batch)
            )
            return False
        if self._pending:
            log.warning("inference log writable again: wrote %d buffered rows", len(self._pending))
        self._pending, self.error = [], None
        self.metrics.log_pending.set(0)
        return True
