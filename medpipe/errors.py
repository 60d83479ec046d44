"""Errors a user can act on, and which failures are worth retrying.

The CLI prints a :class:`MedpipeError`'s message (no traceback) and exits 2. Deterministic failures (bad
config, bad data, a gate that said no) fail fast and once; only :func:`is_transient` failures (a network
hiccup, a locked database, a server that is restarting) are retried, by tenacity outside flows and by
Prefect task retries inside them.
"""

from __future__ import annotations

import smtplib
import sqlite3


class MedpipeError(Exception):
    """Base for expected, user-facing failures: the message names the input and what to do."""


class DataError(MedpipeError):
    """Bad input data (unreadable file, too few classes, ...). The message names the file."""


class RegistryError(MedpipeError):
    """The model registry cannot answer (unreachable server, missing alias, ...)."""


class GateError(MedpipeError):
    """A promotion/export gate refused a model."""


class TransientError(MedpipeError):
    """A failure that may pass on its own (unreachable server, locked store): retrying is worth it."""


_TRANSIENT_WORDS = (
    "connection",
    "max retries",
    "timed out",
    "timeout",
    "unreachable",
    "temporarily unavailable",
    "database is locked",
    "502",
    "503",
    "504",
)


def is_transient(err: BaseException) -> bool:
    """Whether retrying ``err`` can help: network and timeout errors, locked databases, 5xx answers.

    Any other :class:`MedpipeError` is deterministic (config, data, gate) and is never retried, whatever its
    message says; so is an error of an unknown kind (a bug does not go away on the next attempt)."""
    if isinstance(err, TransientError | RegistryError):  # the registry could not answer: maybe next time
        return True
    if isinstance(err, MedpipeError):
        return False
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    if isinstance(err, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(err, smtplib.SMTPResponseException):  # 4xx: try again later; 5xx: refused (auth, recipient)
        return 400 <= err.smtp_code < 500
    if isinstance(err, smtplib.SMTPException):  # e.g. no recipient accepted: the same next time
        return False
    if isinstance(err, sqlite3.OperationalError):
        return "locked" in str(err).lower() or "busy" in str(err).lower()
    name = type(err).__name__
    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(status, int):  # an HTTP answer (httpx/requests HTTPStatusError): busy or broken server side
        return status >= 500 or status == 429
    if name in ("ConnectError", "ReadTimeout", "ConnectTimeout", "RemoteProtocolError", "OperationalError"):
        return True  # httpx / requests / SQLAlchemy transport failures, by name (no import of those here)
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError | PermissionError | IsADirectoryError):
        return True  # requests' ConnectionError and urllib's URLError are OSErrors
    if name == "MlflowException" or name.endswith("RestException"):
        text = str(err).lower()
        return any(word in text for word in _TRANSIENT_WORDS)
    return False
