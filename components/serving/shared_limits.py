"""Limits that hold across the worker processes of one ``medpipe serve`` (no Redis or other server needed).

``limits`` ships storages for memory (one process) and for servers (Redis, Memcached, MongoDB) only, so
:class:`SqliteStorage` is a ``limits`` storage on one SQLite file in the serve folder that every worker opens:
``MovingWindowRateLimiter(SqliteStorage(path))`` counts a client's explanations over all workers together.
Each hit is one ``BEGIN IMMEDIATE`` transaction (count, then insert), so two workers cannot both take the
last entry of a window.

:class:`SharedSlots` caps work in progress across workers with ``n`` lock files: a run holds an exclusive
``flock`` on one of them (filelock, a fresh file descriptor per attempt, so tasks of one process exclude each
other too), and the kernel drops the lock when its process dies, so a killed worker never leaks a slot.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from limits.storage import MovingWindowSupport, Storage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS ix_entries_key ON entries(key, at);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL);
"""


class SqliteStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage in the SQLite file ``path``, shared by every process that opens it (moving window
    and fixed window strategies)."""

    STORAGE_SCHEME = ["medpipe+sqlite"]  # noqa: RUF012 - the limits registry reads a list

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, path: str | Path = "", **options) -> None:  # noqa: ANN003
        super().__init__(uri, wrap_exceptions, **options)
        self.path = Path(path or (uri or "").removeprefix("medpipe+sqlite://"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # stays with the file: readers never block the writer
            conn.executescript(_SCHEMA)
        finally:
            conn.close()

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on a connection of its own (workers and threads never share one)."""
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    # moving window: one row per acquired entry
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        with self._tx() as conn:
            conn.execute("DELETE FROM entries WHERE expires < ?", (now,))
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM entries WHERE key = ? AND at >= ?", (key, now - expiry)
            ).fetchone()
            if count + amount > limit:
                return False
            conn.executemany("INSERT INTO entries VALUES (?, ?, ?)", [(key, now, now + expiry)] * amount)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest entry in the window, entries in the window); (now, 0) when it is empty."""
        now = time.time()
        with self._tx() as conn:
            oldest, count = conn.execute(
                "SELECT MIN(at), COUNT(*) FROM entries WHERE key = ? AND at >= ?", (key, now - expiry)
            ).fetchone()
        return (oldest, count) if count else (now, 0)

    # fixed window: one counter per key
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._tx() as conn:
            row = conn.execute("SELECT value, expires FROM counters WHERE key = ?", (key,)).fetchone()
            value, expires = (row[0] + amount, row[1]) if row and row[1] > now else (amount, now + expiry)
            conn.execute("INSERT OR REPLACE INTO counters VALUES (?, ?, ?)", (key, value, expires))
        return value

    def _counter(self, key: str) -> tuple[int, float] | None:
        with self._tx() as conn:
            row = conn.execute("SELECT value, expires FROM counters WHERE key = ?", (key,)).fetchone()
        return (row[0], row[1]) if row and row[1] > time.time() else None

    def get(self, key: str) -> int:
        found = self._counter(key)
        return found[0] if found else 0

    def get_expiry(self, key: str) -> float:
        found = self._counter(key)
        return found[1] if found else time.time()

    def check(self) -> bool:
        try:
            with self._tx() as conn:
                conn.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        with self._tx() as conn:
            return conn.execute("DELETE FROM entries").rowcount + conn.execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM entries WHERE key = ?", (key,))
            conn.execute("DELETE FROM counters WHERE key = ?", (key,))


class SharedSlots:
    """At most ``n`` holders at once across every process using ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path, n: int, name: str = "slot") -> None:
        self.paths = [Path(folder) / f"{name}-{i}.lock" for i in range(n)]
        Path(folder).mkdir(parents=True, exist_ok=True)

    def try_acquire(self) -> FileLock | None:
        """A held slot (call ``release()`` on it), or None when all ``n`` are taken; never waits."""
        for path in self.paths:
            lock = FileLock(path, timeout=0, thread_local=False, is_singleton=False)
            try:
                lock.acquire()
            except Timeout:
                continue
            return lock
        return None
