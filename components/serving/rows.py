"""Inference-log rows: one dict per served image (prediction, image features, embedding)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from components.serving.images import DecodedImage
from components.serving.model_source import LoadedModel
from medpipe.imaging.features import feature_arrays, feature_records


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
    records = feature_records(
        feature_arrays(
            np.stack([d.array for d in decoded]),
            [d.original_size for d in decoded],
            [d.original_channels for d in decoded],
        )
    )
    names = model.preprocessing.class_names
    decided = model.preprocessing.decide(probs).tolist()
    confidence = probs[np.arange(len(probs)), decided].tolist()
    prob_lists = probs.tolist()
    now = datetime.now(UTC)  # the time served, even when the row waits in memory before it is written
    return [
        {
            "timestamp": now,
            "request_id": request_id,
            "image_index": first_index + i,
            "filename": filenames[i],
            "model_name": model.name,
            "model_version": model.version,
            "predicted_class": names[decided[i]],
            "confidence": confidence[i],
            "class_names": names,
            "probabilities": prob_lists[i],
            "features": records[i],
            "embedding": emb[i],
            "image": raw[i] if raw is not None else None,
            "role": role,
        }
        for i in range(len(decoded))
    ]
