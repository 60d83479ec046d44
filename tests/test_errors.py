"""Which failures are retried: transient ones (network, locked store, 5xx), never a deterministic one."""

from __future__ import annotations

import smtplib
import sqlite3

import httpx
import pytest

from medpipe.config import ConfigError
from medpipe.errors import DataError, GateError, RegistryError, TransientError, is_transient


def _status_error(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/reload")
    return httpx.HTTPStatusError("boom", request=request, response=httpx.Response(code, request=request))


@pytest.mark.parametrize(
    "err",
    [
        ConnectionRefusedError("refused"),
        TimeoutError("timed out"),
        sqlite3.OperationalError("database is locked"),
        httpx.ConnectError("no route"),
        _status_error(503),
        _status_error(429),
        TransientError("server restarting"),
        RegistryError("the tracking server is unreachable"),
        smtplib.SMTPServerDisconnected("gone"),
        smtplib.SMTPResponseException(421, b"try later"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_failures_are_retried(err: BaseException) -> None:
    assert is_transient(err)


@pytest.mark.parametrize(
    "err",
    [
        ConfigError("train.lr=-1: must be > 0"),
        DataError("scans.npz: only one class"),
        GateError("registry.positive_class='malignant' is not a class of this model"),
        _status_error(404),
        FileNotFoundError("params.yaml"),
        ValueError("bad value"),
        sqlite3.OperationalError("no such table: runs"),
        smtplib.SMTPAuthenticationError(535, b"bad credentials"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_deterministic_failures_fail_once(err: BaseException) -> None:
    assert not is_transient(err)
