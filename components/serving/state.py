"""What the serving app holds between requests (on ``app.state.serving``), and the atomic model swap."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from components.serving.batcher import MicroBatcher
from components.serving.canary import Splitter
from components.serving.explain_limits import ExplainLimits
from components.serving.inference_log import InferenceLog
from components.serving.log_writer import BufferedLogWriter
from components.serving.model_source import LoadedModel, load_model, model_marker
from components.serving.telemetry import ServingMetrics
from medpipe.config import ExportConfig, ServingConfig
from medpipe.errors import MedpipeError
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
    challenger_uri: str | None = None  # serving.canary: the second model, loaded beside the champion
    challenger: LoadedModel | None = None
    challenger_error: str | None = None
    splitter: Splitter | None = None
    explain_limits: ExplainLimits | None = None  # rate and concurrency of /v1/explain, across the workers
    explainers: dict[str, Any] = field(default_factory=dict)  # model marker -> its PyTorch network (explain)
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload(self, force: bool = False) -> bool:
        """Load the model ``model_uri`` points at now if it changed (or ``force``); swap atomically.

        Requests that already hold the old :class:`LoadedModel` finish on it. Returns whether it swapped.
        The challenger (``serving.canary``) is brought up to date too, whatever happens to the champion.
        """
        async with self.reload_lock:
            try:
                return await self._reload_champion(force)
            finally:
                await self._reload_challenger(force)

    async def _reload_champion(self, force: bool) -> bool:
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

    async def _reload_challenger(self, force: bool) -> None:
        """Keep the challenger current; a missing or broken one only means the champion answers everything."""
        if self.challenger_uri is None:
            return
        try:
            marker = await asyncio.to_thread(model_marker, self.challenger_uri, self.settings)
            if force or self.challenger is None or marker != self.challenger.marker:
                self.challenger = await asyncio.to_thread(
                    load_model, self.challenger_uri, self.export_cfg, self.settings
                )
            self.challenger_error = None
        except Exception as err:  # noqa: BLE001 - recorded and shown in /v1/model; the champion still serves
            self.challenger, self.challenger_error = None, f"{type(err).__name__}: {err}"
            log.warning("challenger %s not loaded, the champion answers all requests: %s", self.challenger_uri, err)

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


def _check_same_input(challenger: LoadedModel, champion: LoadedModel | None) -> None:
    """Both models must take the same decoded image: one decode per request serves both."""
    if champion is None:
        return
    a, b = challenger.preprocessing, champion.preprocessing
    if (a.channels, a.image_size, a.class_names) != (b.channels, b.image_size, b.class_names):
        raise MedpipeError(
            f"challenger {challenger.name} v{challenger.version} takes {a.channels}x{a.image_size}px images with "
            f"classes {a.class_names}; the champion {b.channels}x{b.image_size}px with {b.class_names}"
        )
