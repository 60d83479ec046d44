"""The inference log: one SQLite (WAL) row per served image, read back as a DataFrame for a time window.

Each :meth:`InferenceLog.append` is one short ``BEGIN IMMEDIATE`` transaction on its own connection,
with a generous busy timeout, so many threads or processes can write at once and nothing is lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpipe.errors import DataError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    request_id TEXT NOT NULL,
    image_index INTEGER NOT NULL DEFAULT 0,
    filename TEXT,
    model_name TEXT,
    model_version TEXT,
    predicted_class TEXT NOT NULL,
    confidence REAL,
    class_names TEXT,
    probabilities TEXT NOT NULL,
    features TEXT,
    embedding BLOB,
    label TEXT,
    label_timestamp TEXT,
    image BLOB,
    role TEXT
);
CREATE INDEX IF NOT EXISTS ix_predictions_timestamp ON predictions(timestamp);
CREATE INDEX IF NOT EXISTS ix_predictions_request ON predictions(request_id);
"""
_COLUMNS = (
    "timestamp",
    "request_id",
    "image_index",
    "filename",
    "model_name",
    "model_version",
    "predicted_class",
    "confidence",
    "class_names",
    "probabilities",
    "features",
    "embedding",
    "label",
    "image",
    "role",
)
SHADOW = "shadow"  # role of a challenger's prediction that was scored but not sent back


def _iso(ts: datetime | str | None) -> str:
    if ts is None:
        ts = datetime.now(UTC)
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, default=float)


class InferenceLog:
    """Append-only prediction log in SQLite WAL mode at ``path``.

    ``keep_open`` (a server): hold one idle read connection for the object's life. Without it, every
    append's connection is the last one to close, and SQLite then checkpoints and deletes the WAL file: about
    20-35 ms per append here, against 0.2 ms with the WAL kept (``benchmarks/serve_load.py``). Appends still
    open their own connection, so a log that becomes unwritable fails the next append.
    """

    def __init__(self, path: Path, timeout_s: float = 60.0, *, keep_open: bool = False) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._anchor: sqlite3.Connection | None = None
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(predictions)")}
            if "role" not in columns:  # a log written before canary/shadow serving
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                    conn.execute("ALTER TABLE predictions ADD COLUMN role TEXT")
        if keep_open:
            self._anchor = sqlite3.connect(self.path, timeout=self.timeout_s, check_same_thread=False)
            self._anchor.execute("SELECT COUNT(*) FROM predictions WHERE id < 0").fetchone()  # opens the files

    def close(self) -> None:
        """Release the connection ``keep_open`` holds (SQLite checkpoints the WAL then)."""
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Write ``rows`` (one per image) in one transaction; returns how many were written.

        Keys: request_id, predicted_class, probabilities (list, class order) required; timestamp (default now),
        image_index, filename, model_name, model_version, confidence, class_names (list), features (dict),
        embedding (float array), label, image (bytes), role (champion, canary or shadow) optional.
        """
        if not rows:
            return 0
        if self._anchor is not None and not os.access(self.path, os.W_OK):
            # a kept-open log would go on writing its WAL and fail only at checkpoint: refuse now, as a fresh
            # connection would (read-only file, immutable, permissions changed)
            raise sqlite3.OperationalError(f"inference log {self.path} is not writable")
        values = []
        for row in rows:
            emb = row.get("embedding")
            probs = [float(p) for p in row["probabilities"]]
            values.append(
                (
                    _iso(row.get("timestamp")),
                    str(row["request_id"]),
                    int(row.get("image_index", 0)),
                    row.get("filename"),
                    row.get("model_name"),
                    None if row.get("model_version") is None else str(row["model_version"]),
                    str(row["predicted_class"]),
                    float(row["confidence"]) if row.get("confidence") is not None else max(probs),
                    _json(row.get("class_names")),
                    _json(probs),
                    _json(row.get("features")),
                    None if emb is None else np.asarray(emb, dtype=np.float32).tobytes(),
                    None if row.get("label") is None else str(row["label"]),
                    row.get("image"),
                    row.get("role"),
                )
            )
        sql = f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, values)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(values)

    def add_feedback(self, request_id: str, label: str | int, image_index: int | None = None) -> int:
        """Attach the ground-truth ``label`` (class name or index) to a request's rows; returns rows updated."""
        with self._connect() as conn:
            where, args = "request_id = ?", [request_id]
            if image_index is not None:
                where, args = where + " AND image_index = ?", [*args, image_index]
            found = conn.execute(f"SELECT class_names FROM predictions WHERE {where} LIMIT 1", args).fetchone()
            if found is None:
                which = f" image {image_index}" if image_index is not None else ""
                raise UnknownPrediction(  # the file name only: API clients must not learn server paths
                    f"no prediction with request id {request_id!r}{which} in the inference log ({self.path.name})"
                )
            name = _label_name(label, json.loads(found[0]) if found[0] else None)
            cur = conn.execute(
                f"UPDATE predictions SET label = ?, label_timestamp = ? WHERE {where}", [name, _iso(None), *args]
            )
            return cur.rowcount

    def read_window(
        self, since: datetime | None = None, until: datetime | None = None, *, include_shadow: bool = False
    ) -> pd.DataFrame:
        """Rows with ``since <= timestamp < until`` (UTC; None = open end), oldest first; the predictions that
        were sent back only, unless ``include_shadow`` (a shadow challenger's are scored but never answered).

        Columns: timestamp (datetime64 UTC), request_id, image_index, filename, model_name, model_version,
        predicted_class, confidence, class_names (list), probabilities (list), features (dict),
        embedding (float32 array or None), label (str or None), role, label_timestamp.
        """
        clauses, args = [] if include_shadow else [f"(role IS NULL OR role != '{SHADOW}')"], []
        if since is not None:
            clauses.append("timestamp >= ?")
            args.append(_iso(since))
        if until is not None:
            clauses.append("timestamp < ?")
            args.append(_iso(until))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        cols = [c for c in _COLUMNS if c != "image"] + ["label_timestamp"]
        with self._connect() as conn:
            sql = f"SELECT {', '.join(cols)} FROM predictions {where} ORDER BY id"
            frame = pd.read_sql_query(sql, conn, params=args)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        for col in ("class_names", "probabilities", "features"):
            frame[col] = [json.loads(v) if v else None for v in frame[col]]
        frame["embedding"] = [None if v is None else np.frombuffer(v, dtype=np.float32) for v in frame["embedding"]]
        frame["label"] = frame["label"].astype(object).where(frame["label"].notna(), None)
        return frame

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])


class UnknownPrediction(DataError):
    """Feedback for a request id (or image index) the log does not hold."""


def _label_name(label: str | int, class_names: list[str] | None) -> str:
    if isinstance(label, bool):
        raise DataError(f"label {label!r} is a boolean, not a class name or index")
    if class_names is None:
        return str(label)
    if isinstance(label, str) and label in class_names:
        return label
    try:
        index = int(label)
    except (TypeError, ValueError):
        index = None
    if index is not None and 0 <= index < len(class_names):
        return class_names[index]
    raise DataError(f"label {label!r} is not a class of this model; use one of {class_names} or its index")
