"""The hot path every scoring route shares: decoded images -> micro-batched ONNX run -> inference log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from fastapi.concurrency import run_in_threadpool

from components.models.inference import to_pixels
from components.serving.canary import CANARY, CHAMPION, SHADOW
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
    champion: LoadedModel,
    filenames: Sequence[str],
    decoded: Sequence[DecodedImage],
    raw: Sequence[bytes] | None = None,
    pixels: np.ndarray | None = None,
    routed: bool = True,
) -> Scored:
    """Run ``decoded`` through the model that answers (batched with concurrent requests), log one row per image.

    ``pixels`` (float32 (N, C, H, W)) is the model input when the client sent tensors, not files. With
    ``serving.canary``, a share of requests is answered by the challenger (``canary``), or every request is
    also scored by it and logged as ``shadow`` while the champion answers. ``routed=False``: the champion only
    (a client that asked for its version by number).
    """
    if pixels is None:
        pixels = to_pixels(np.stack([d.array for d in decoded])).numpy()
    model, role, shadow = _route(state, champion) if routed else (champion, CHAMPION, None)
    runs = [state.batcher.submit(model, pixels)] + ([state.batcher.submit(shadow, pixels)] if shadow else [])
    results = await asyncio.gather(*runs, return_exceptions=True)
    if isinstance(results[0], BaseException):
        raise results[0]
    probs, emb = results[0]
    state.metrics.count_predictions(
        model.version, model.preprocessing.class_names, model.preprocessing.decide(probs), role
    )
    stored = raw if state.cfg.store_images else None
    answers = [(model, probs, emb, stored, role)]  # whose rows go to the inference log
    if shadow is not None:
        if isinstance(results[1], BaseException):
            log.warning("shadow model %s failed on request %s: %s", shadow.version, request_id, results[1])
        else:
            s_probs, s_emb = results[1]
            state.metrics.count_predictions(
                shadow.version, shadow.preprocessing.class_names, shadow.preprocessing.decide(s_probs), SHADOW
            )
            answers.append((shadow, s_probs, s_emb, None, SHADOW))

    def write_log() -> None:  # one thread hop for the rows and the write: buffered on failure, 503 once full
        rows = [row for m, p, e, kept, r in answers
                for row in log_rows(request_id, m, filenames, decoded, p, e, raw=kept, role=r)]  # fmt: skip
        state.log_writer.write(rows)

    await run_in_threadpool(write_log)
    return Scored(request_id, model, probs, emb)


def _route(state: ServingState, champion: LoadedModel) -> tuple[LoadedModel, str, LoadedModel | None]:
    """(the model that answers, its role, the shadow model or None)."""
    challenger, canary = state.challenger, state.cfg.canary
    if challenger is None or canary is None:
        return champion, CHAMPION, None
    if canary.mode == SHADOW:
        return champion, CHAMPION, challenger
    if state.splitter is not None and state.splitter.canary_answers():
        return challenger, CANARY, None
    return champion, CHAMPION, None
