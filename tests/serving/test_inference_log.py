from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from components.serving.inference_log import InferenceLog
from medpipe.errors import DataError

NAMES = ["malignant", "normal_or_benign"]


def _row(rid: str, i: int, ts: datetime | None = None) -> dict:
    return {
        "request_id": rid,
        "image_index": i,
        "timestamp": ts,
        "model_version": "3",
        "predicted_class": NAMES[i % 2],
        "class_names": NAMES,
        "probabilities": [0.25, 0.75],
        "features": {"intensity_mean": 10.0 + i},
        "embedding": np.arange(4, dtype=np.float32) + i,
    }


def test_sixteen_concurrent_writers_lose_nothing(tmp_path) -> None:
    log = InferenceLog(tmp_path / "inference.db")
    barrier = threading.Barrier(16)

    def writer(w: int) -> None:
        barrier.wait()
        for j in range(40):
            InferenceLog(tmp_path / "inference.db").append([_row(f"w{w}-{j}", k) for k in range(1 + j % 3)])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    expected = 16 * sum(1 + j % 3 for j in range(40))
    assert log.count() == expected
    frame = log.read_window()
    assert len(frame) == expected and frame.request_id.nunique() == 16 * 40
    assert frame.embedding.iloc[0].dtype == np.float32 and frame.features.iloc[0]["intensity_mean"] >= 10.0


def test_window_and_feedback(tmp_path) -> None:
    log = InferenceLog(tmp_path / "inference.db")
    now = datetime.now(UTC)
    log.append([_row("old", 0, now - timedelta(days=2)), _row("new", 0, now), _row("new", 1, now)])
    assert log.read_window(since=now - timedelta(hours=1)).request_id.tolist() == ["new", "new"]
    assert log.read_window(until=now - timedelta(days=1)).request_id.tolist() == ["old"]
    assert log.read_window(since=(now - timedelta(hours=1)).replace(tzinfo=None)).shape[0] == 2  # naive = UTC
    assert log.add_feedback("new", 1) == 2
    assert log.add_feedback("old", "malignant") == 1
    frame = log.read_window()
    assert frame.label.tolist() == ["malignant", "normal_or_benign", "normal_or_benign"]
    with pytest.raises(DataError, match="no prediction with request id 'nope'"):
        log.add_feedback("nope", 0)
    with pytest.raises(DataError, match="not a class of this model"):
        log.add_feedback("new", "cat")
