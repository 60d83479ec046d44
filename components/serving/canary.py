"""Canary and shadow serving: which model answers a request, and where the challenger comes from."""

from __future__ import annotations

import random

from components.serving.model_source import parse_registry_uri
from medpipe.config import CanaryConfig
from medpipe.errors import MedpipeError

CHAMPION, CANARY, SHADOW = "champion", "canary", "shadow"


def challenger_uri(model_uri: str, cfg: CanaryConfig) -> str:
    """``cfg.uri``, else the served registered model under ``cfg.alias`` (``models:/name@champion`` ->
    ``models:/name@challenger``)."""
    if cfg.uri:
        return cfg.uri
    parsed = parse_registry_uri(model_uri)
    if parsed is None:
        raise MedpipeError(
            f"serving.canary needs serving.canary.uri when the served model {model_uri!r} is not a registered "
            "models:/<name>@<alias> URI"
        )
    return f"models:/{parsed[0]}@{cfg.alias}"


class Splitter:
    """Draws, per request, whether the canary answers (with probability ``share``)."""

    def __init__(self, share: float, seed: int | None = None) -> None:
        self.share = share
        self._rng = random.Random(seed)

    def canary_answers(self) -> bool:
        return self._rng.random() < self.share
