"""Who may call the API: API keys set means auth is on; no keys on a non-loopback address needs an opt-in.

Checked once at start (``create_app`` and ``medpipe serve``), so a server never runs open by accident:
- ``MEDPIPE_API_KEYS`` set turns auth on (``serving.require_api_key: null``, the default, follows the keys);
- ``require_api_key: true`` without keys, or ``false`` with keys, is refused: the two say opposite things;
- a placeholder key (``CHANGE-ME`` from the example secret) is refused;
- binding a non-loopback address with no keys needs ``serving.allow_unauthenticated: true``.
"""

from __future__ import annotations

import ipaddress

from medpipe.config import ServingConfig
from medpipe.errors import MedpipeError
from medpipe.settings import Settings

PLACEHOLDER_KEYS = frozenset({"change-me", "changeme", "replace-me"})


def api_keys(cfg: ServingConfig, settings: Settings) -> frozenset[str]:
    """The keys that protect the API (empty: auth off). Raises when the settings contradict each other."""
    keys = frozenset(settings.api_key_set())
    if placeholder := sorted(k for k in keys if k.lower() in PLACEHOLDER_KEYS):
        raise MedpipeError(f"MEDPIPE_API_KEYS holds the placeholder {placeholder[0]!r}: set real, secret keys")
    if cfg.require_api_key is True and not keys:
        raise MedpipeError("serving.require_api_key is true but MEDPIPE_API_KEYS is empty; set comma-separated keys")
    if cfg.require_api_key is False and keys:
        raise MedpipeError(
            "MEDPIPE_API_KEYS is set but serving.require_api_key is false, which would leave the API open: "
            "remove the setting (keys turn auth on) or unset MEDPIPE_API_KEYS"
        )
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: may resolve to anything
        return False


def check_bind(host: str, keys: frozenset[str], cfg: ServingConfig) -> None:
    """Refuse to serve without keys on an address other machines can reach, unless explicitly allowed."""
    if keys or is_loopback(host) or cfg.allow_unauthenticated:
        return
    raise MedpipeError(
        f"refusing to serve on {host} without API keys: anyone who reaches it could predict, reload and write "
        "feedback. Set MEDPIPE_API_KEYS (comma-separated), bind 127.0.0.1, or opt in with "
        "-S serving.allow_unauthenticated=true"
    )
