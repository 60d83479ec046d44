"""The retrain guard: drift -> yes; no drift, tiny window, cooldown, daily cap, disabled -> no (with the reason)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from medpipe.config import RetrainConfig
from monitoring.retrain import record_retrain, should_retrain
from monitoring.summary import DriftSummary, Signal


def _summary(drift: bool, status: str | None = None) -> DriftSummary:
    sig = [Signal("embedding", 0.8 if drift else 0.5, 0.6, drift)]
    return DriftSummary(drift, status or ("drift" if drift else "ok"), sig, window_size=100, reference_size=624)


def test_guard(tmp_path) -> None:
    state = tmp_path / "retrain.json"
    cfg = RetrainConfig(enabled=True, cooldown_hours=2, max_runs_per_day=2)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert should_retrain(_summary(False), cfg, state, now=t0) == (False, "no drift")
    tiny = DriftSummary(False, "not_enough_data", [], window_size=3, reference_size=624)
    assert should_retrain(tiny, cfg, state, now=t0)[1].startswith("not enough data")
    ok, reason = should_retrain(_summary(True), cfg, state, now=t0)
    assert ok and "embedding" in reason
    record_retrain(state, now=t0)
    ok, reason = should_retrain(_summary(True), cfg, state, now=t0 + timedelta(hours=1))
    assert not ok and "cooldown" in reason
    assert should_retrain(_summary(True), cfg, state, now=t0 + timedelta(hours=3))[0]
    record_retrain(state, now=t0 + timedelta(hours=3))
    ok, reason = should_retrain(_summary(True), cfg, state, now=t0 + timedelta(hours=6))
    assert not ok and "daily cap" in reason
    assert should_retrain(_summary(True), cfg, state, now=t0 + timedelta(hours=27, minutes=1))[0]
    off = RetrainConfig(enabled=False)
    assert not should_retrain(_summary(True), off, tmp_path / "other.json")[0]
