"""Inference-log rows: one dict per served image (prediction, image features, embedding)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from components.serving.images import DecodedImage
from components.serving.model_source import LoadedModel


def log_rows(
    request_id: str,
    model: LoadedModel,
    filenames: Sequence[str],
    decoded: Sequence[DecodedImage],
    probs: np.ndarray,
    emb: np.ndarray,
    *,
    raw: Sequence[bytes] | None = None,
    first_index: int = 0,
    role: str | None = None,
) -> list[dict[str, Any]]:
    """Rows for :meth:`InferenceLog.append`; ``raw`` (the sent bytes) is stored only when given."""
    from medpipe.imaging.features import image_features

    feats = image_features(
        np.stack([d.array for d in decoded]),
        [d.original_size for d in decoded],
        [d.original_channels for d in decoded],
    )
    names = model.preprocessing.class_names
    decided = model.preprocessing.decide(probs)
    records = feats.to_dict("records")
    now = datetime.now(UTC)  # the time served, even when the row waits in memory before it is written
    return [
        {
            "timestamp": now,
            "request_id": request_id,
            "image_index": first_index + i,
            "filename": filenames[i],
            "model_name": model.name,
            "model_version": model.version,
            "predicted_class": names[int(decided[i])],
            "confidence": float(probs[i][decided[i]]),
            "class_names": names,
            "probabilities": probs[i].tolist(),
            "features": {k: float(v) for k, v in records[i].items()},
            "embedding": emb[i],
            "image": raw[i] if raw is not None else None,
            "role": role,
        }
        for i in range(len(decoded))
    ]
