"""Waiting on a condition, with a deadline: the one way tests wait for another thread or process.

No test sleeps a fixed time hoping that something has happened; it names the condition it waits for, and
fails with that name (and what the process wrote) when the deadline passes or the process it waits on exits.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    what: str,
    timeout_s: float,
    *,
    procs: Iterable[subprocess.Popen] = (),
    ignore: tuple[type[BaseException], ...] = (),
    every_s: float = 0.2,
    detail: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``check()`` every ``every_s`` until it returns a truthy value, and return that value.

    ``ignore``: exceptions that mean "not yet" (a server that refuses connections while it starts).
    Fails at once when one of ``procs`` exits, and after ``timeout_s``; both messages name ``what`` and end
    with ``detail()`` (e.g. the tail of a log)."""
    procs = list(procs)

    def attempt() -> T:
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{proc.args!r} exited with {proc.returncode} while waiting for {what}\n{detail()}"
                )
        return check()

    retrying = Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(every_s),
        retry=retry_if_result(lambda result: not result) | retry_if_exception_type(ignore),
        reraise=False,
    )
    try:
        return retrying(attempt)
    except RetryError as exc:
        last = exc.last_attempt
        cause = f" (last error: {last.exception()!r})" if last.failed else ""
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{cause}\n{detail()}") from None
