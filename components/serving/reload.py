"""Tell a running server to look for a new champion now (it also polls every ``serving.reload_interval_s``)."""

from __future__ import annotations

import httpx

from medpipe.config import ServingConfig
from medpipe.settings import Settings


def signal_reload(cfg: ServingConfig, settings: Settings, timeout_s: float = 60.0) -> bool:
    """POST ``/v1/reload`` to the server at ``serving.host:port``; True when it swapped to a new version.

    No server listening is not an error (returns False): a server started later loads the champion anyway.
    A server that answers with an error raises, so a broken new champion is noticed.
    """
    headers = {}
    if keys := sorted(settings.api_key_set()):
        headers["X-API-Key"] = keys[0]
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    try:
        response = httpx.post(f"http://{host}:{cfg.port}/v1/reload", headers=headers, timeout=timeout_s)
    except httpx.ConnectError:
        return False
    response.raise_for_status()
    return bool(response.json().get("reloaded"))
