"""What the serving app holds between requests (on ``app.state.serving``), and the atomic model swap."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from components.serving.batcher import MicroBatcher
from components.serving.inference_log import InferenceLog
from components.serving.log_writer import BufferedLogWriter
from components.serving.model_source import LoadedModel, load_model, model_marker
from components.serving.telemetry import ServingMetrics
from medpipe.config import ExportConfig, ServingConfig
from medpipe.settings import Settings

log = logging.getLogger("medpipe.serving")


@dataclass
class ServingState:
    settings: Settings
    cfg: ServingConfig
    export_cfg: ExportConfig
    model_uri: str
    batcher: MicroBatcher
    inference_log: InferenceLog
    log_writer: BufferedLogWriter
    api_keys: frozenset[str]
    metrics: ServingMetrics
    model: LoadedModel | None = None
    last_error: str | None = None
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload(self, force: bool = False) -> bool:
        """Load the model ``model_uri`` points at now if it changed (or ``force``); swap atomically.

        Requests that already hold the old :class:`LoadedModel` finish on it. Returns whether it swapped.
        """
        async with self.reload_lock:
            try:
                marker = await asyncio.to_thread(model_marker, self.model_uri, self.settings)
                if not force and self.model is not None and marker == self.model.marker:
                    return False
                new = await asyncio.to_thread(load_model, self.model_uri, self.export_cfg, self.settings)
            except Exception as err:
                self.last_error = f"{type(err).__name__}: {err}"
                self.metrics.reloads.labels("failed").inc()
                log.error("loading %s failed, keeping version %s: %s", self.model_uri, self.version, err)
                raise
            old, self.model, self.last_error = self.model, new, None
            self.metrics.swapped(new.name, new.version, (old.name, old.version) if old else None)
            log.info("serving %s version %s (was %s) on %s", new.name, new.version, old and old.version, new.provider)
            return old is None or old.version != new.version or old.marker != new.marker

    def not_ready(self) -> str | None:
        """Why the server must not take traffic now (no model, or an inference log it cannot write), or None."""
        if self.model is None:
            return self.last_error or "loading"
        if self.log_writer.error is not None:
            return (
                f"inference log {self.inference_log.path.name} not writable ({self.log_writer.error}); "
                f"{self.log_writer.pending}/{self.log_writer.capacity} rows held in memory"
            )
        return None

    @property
    def version(self) -> str | None:
        return self.model.version if self.model else None
