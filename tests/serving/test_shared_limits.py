"""Limits shared by processes: the SQLite ``limits`` storage and the lock-file slots, raced by real processes."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from components.serving.shared_limits import SharedSlots, SqliteStorage
from tests.helpers.wait import wait_until


def _hit_many(path: str, n: int, go, out) -> None:  # noqa: ANN001 - multiprocessing primitives
    limiter = MovingWindowRateLimiter(SqliteStorage(path=path))
    go.wait()
    out.put(sum(limiter.hit(RateLimitItemPerMinute(7), "explain", "addr:x") for _ in range(n)))


def test_moving_window_holds_across_processes(tmp_path: Path) -> None:
    """4 processes race 10 hits each against one 7-per-minute limit: exactly 7 pass, whoever wins them."""
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    path = str(tmp_path / "rate.db")
    SqliteStorage(path=path)  # the schema, before the race
    procs = [ctx.Process(target=_hit_many, args=(path, 10, go, out)) for _ in range(4)]
    for p in procs:
        p.start()
    go.set()
    passed = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sum(passed) == 7, passed


def test_moving_window_semantics_match_limits_memory_storage(tmp_path: Path) -> None:
    storage = SqliteStorage(path=tmp_path / "rate.db")
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(2)
    assert limiter.hit(item, "k") and limiter.hit(item, "k") and not limiter.hit(item, "k")
    assert limiter.hit(item, "other")  # per key
    stats = limiter.get_window_stats(item, "k")
    assert stats.remaining == 0 and time.time() < stats.reset_time <= time.time() + 1
    assert not limiter.test(item, "k")
    # the window moves on: entries older than 1 s no longer count
    wait_until(lambda: limiter.test(item, "k"), "the moving window to free an entry", 5, every_s=0.05)
    assert limiter.hit(item, "k")
    assert not storage.acquire_entry("big", limit=2, expiry=60, amount=3)  # more than the limit at once
    storage.clear(item.key_for("k"))
    assert limiter.get_window_stats(item, "k").remaining == 2
    assert storage.check()


def test_fixed_window_counters(tmp_path: Path) -> None:
    storage = SqliteStorage(uri=f"medpipe+sqlite://{tmp_path / 'fixed.db'}")
    limiter, memory = FixedWindowRateLimiter(storage), FixedWindowRateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(3)
    got, expected = [limiter.hit(item, "c") for _ in range(4)], [memory.hit(item, "c") for _ in range(4)]
    assert got == expected == [True, True, True, False]
    assert storage.get(item.key_for("c")) == memory.storage.get(item.key_for("c")) and storage.get("missing") == 0
    assert time.time() < storage.get_expiry(item.key_for("c")) <= time.time() + 60
    assert storage.reset() >= 1 and storage.get(item.key_for("c")) == 0


def _hold_slot(folder: str, held, release) -> None:  # noqa: ANN001
    lock = SharedSlots(Path(folder), 1).try_acquire()
    held.put(lock is not None)
    release.wait(60)  # then exits without releasing: the kernel drops the lock with the process


def test_slots_are_shared_by_processes_and_freed_when_one_dies(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    held, release = ctx.Queue(), ctx.Event()
    other = ctx.Process(target=_hold_slot, args=(str(tmp_path), held, release))
    other.start()
    assert held.get(timeout=120) is True
    slots = SharedSlots(tmp_path, 1)
    assert slots.try_acquire() is None  # the other process holds the only slot
    release.set()
    other.join(timeout=60)
    mine = slots.try_acquire()
    assert mine is not None  # freed by the other process's exit, never released by it
    assert slots.try_acquire() is None  # and exclusive within one process too
    mine.release()
    two = SharedSlots(tmp_path, 2)
    a, b = two.try_acquire(), two.try_acquire()
    assert a is not None and b is not None and two.try_acquire() is None
