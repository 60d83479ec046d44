"""The limits of ``/v1/explain``, counted across every worker of one ``medpipe serve``.

* ``serving.explain_rate_per_minute``: explanations per client (its API key, else its address) in any moving
  one-minute window, over all workers together (``limits``' moving window on :class:`SqliteStorage`);
* ``serving.explain_concurrency``: Grad-CAM runs at once over all workers together (:class:`SharedSlots`).

Beyond either, the request is answered 429 at once with ``Retry-After``, instead of queueing. The state lives
in ``folder`` (``<MEDPIPE_HOME>/serve/<port>/limits`` under ``medpipe serve``, cleared when it starts).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter

from components.serving.images import InputError
from components.serving.shared_limits import SharedSlots, SqliteStorage
from medpipe.config import ServingConfig


def client_id(api_key: str | None, address: str | None) -> str:
    """Whom the rate counts: a hash of the API key (never the key itself), else the client's address."""
    return f"key:{hashlib.sha256(api_key.encode()).hexdigest()[:16]}" if api_key else f"addr:{address}"


class ExplainLimits:
    def __init__(self, folder: Path, cfg: ServingConfig) -> None:
        self.per_minute, self.concurrency = cfg.explain_rate_per_minute, cfg.explain_concurrency
        self.slots = SharedSlots(folder, self.concurrency, name="explain-slot")
        self.limiter = MovingWindowRateLimiter(SqliteStorage(path=Path(folder) / "explain-rate.db"))

    def check_rate(self, client: str) -> None:
        """Count one explanation for ``client``, or raise 429 ``explain_rate_limited`` (blocking: SQLite)."""
        if not self.per_minute:
            return
        item = RateLimitItemPerMinute(self.per_minute)
        if self.limiter.hit(item, "explain", client):
            return
        reset = self.limiter.get_window_stats(item, "explain", client).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise InputError(429, "explain_rate_limited", f"more than serving.explain_rate_per_minute={self.per_minute}"
                         f" explanations in a minute from this client; retry in {retry_after} s",
                         headers={"Retry-After": str(retry_after)})  # fmt: skip

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``serving.explain_concurrency`` slots, or raise 429 ``explain_busy`` at once."""
        lock = self.slots.try_acquire()
        if lock is None:
            raise InputError(429, "explain_busy", f"serving.explain_concurrency={self.concurrency} explanations are "
                             "already running; retry shortly", headers={"Retry-After": "1"})  # fmt: skip
        try:
            yield
        finally:
            lock.release()
