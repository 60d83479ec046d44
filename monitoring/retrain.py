"""The retraining guard: drift confirmed -> retrain, unless a cooldown or the daily cap says wait.

:func:`decide_retrain` runs before alerting (the alert states the decision): it asks :func:`should_retrain`
and, when a starter is given (the monitoring flow passes one that emits ``medpipe.drift.detected`` or runs
the training flow), records the start. State is a small JSON file in the state folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from medpipe.config import RetrainConfig
from monitoring.summary import DriftSummary


def _runs(state_path: Path) -> list[datetime]:
    try:
        raw = json.loads(Path(state_path).read_text())
    except (OSError, ValueError):
        return []
    return sorted(datetime.fromisoformat(t) for t in raw.get("runs", []))


def should_retrain(
    summary: DriftSummary, cfg: RetrainConfig, state_path: Path, now: datetime | None = None
) -> tuple[bool, str]:
    """(retrain?, why). Needs confirmed drift, retraining enabled, the cooldown passed and the daily cap free."""
    now = now or datetime.now(UTC)
    if not cfg.enabled:
        return False, "retraining is disabled (monitoring.retrain.enabled=false)"
    if summary.status == "not_enough_data":
        return False, f"not enough data for a verdict ({summary.window_size} rows)"
    if not summary.drift_detected:
        return False, "no drift"
    runs = _runs(state_path)
    if runs and now - runs[-1] < timedelta(hours=cfg.cooldown_hours):
        wait = runs[-1] + timedelta(hours=cfg.cooldown_hours) - now
        return False, (
            f"retrain cooldown: last retrain at {runs[-1].isoformat(timespec='seconds')}, "
            f"{cfg.cooldown_hours:g} h cooldown ({wait.total_seconds() / 3600:.1f} h left)"
        )
    today = [t for t in runs if now - t < timedelta(days=1)]
    if len(today) >= cfg.max_runs_per_day:
        cap = cfg.max_runs_per_day
        return False, f"daily cap reached: {len(today)} retrains in the last 24 h (max_runs_per_day={cap})"
    names = ", ".join(s.name for s in summary.drifted_signals)
    return True, f"drift confirmed ({names})"


def record_retrain(state_path: Path, now: datetime | None = None, keep_days: int = 7) -> None:
    """Remember that a retrain started (call it when the training flow is launched)."""
    now = now or datetime.now(UTC)
    runs = [t for t in _runs(state_path) if now - t < timedelta(days=keep_days)] + [now]
    path = Path(state_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"runs": [t.isoformat() for t in runs]}, indent=2))
    tmp.replace(path)


@dataclass(frozen=True)
class RetrainDecision:
    """Whether this check started a retrain, and why (or why not); ``run`` names what was started."""

    started: bool
    reason: str
    run: str | None = None

    def text(self) -> str:
        return f"started ({self.run}): {self.reason}" if self.started else f"not started: {self.reason}"


def decide_retrain(
    summary: DriftSummary, cfg: RetrainConfig, state_path: Path, start: Callable[[str], str] | None = None
) -> RetrainDecision:
    """Decide (and, given ``start``, launch) a retrain before anyone is alerted, so the alert can say what
    happened. ``start(reason)`` launches training and returns what it started (a run id or event name)."""
    go, reason = should_retrain(summary, cfg, state_path)
    if not go:
        return RetrainDecision(False, reason)
    if start is None:
        return RetrainDecision(False, f"{reason}; this check cannot start training (the monitoring flow does)")
    record_retrain(state_path)
    return RetrainDecision(True, reason, start(reason))
