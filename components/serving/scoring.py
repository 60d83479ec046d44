"""The hot path every scoring route shares: decoded images -> micro-batched ONNX run -> inference log."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from fastapi.concurrency import run_in_threadpool

from components.models.inference import to_pixels
from components.serving.images import DecodedImage
from components.serving.model_source import LoadedModel
from components.serving.rows import log_rows
from components.serving.state import ServingState

log = logging.getLogger("medpipe.serving")


@dataclass(frozen=True)
class Scored:
    request_id: str
    model: LoadedModel
    probabilities: np.ndarray  # (N, K)
    embedding: np.ndarray  # (N, D)


async def score(
    request_id: str,
    state: ServingState,
    model: LoadedModel,
    filenames: Sequence[str],
    decoded: Sequence[DecodedImage],
    raw: Sequence[bytes] | None = None,
    pixels: np.ndarray | None = None,
) -> Scored:
    """Run ``decoded`` through ``model`` (batched with concurrent requests) and log one row per image.

    ``pixels`` (float32 (N, C, H, W)) is the model input when the client sent tensors, not files.
    """
    if pixels is None:
        pixels = to_pixels(np.stack([d.array for d in decoded])).numpy()
    probs, emb = await state.batcher.submit(model, pixels)
    state.metrics.count_predictions(model.version, model.preprocessing.class_names, probs)
    stored = raw if state.cfg.store_images else None
    rows = await run_in_threadpool(log_rows, request_id, model, filenames, decoded, probs, emb, raw=stored)
    await run_in_threadpool(state.log_writer.write, rows)  # buffered on failure; 503 once the buffer is full
    return Scored(request_id, model, probs, emb)
