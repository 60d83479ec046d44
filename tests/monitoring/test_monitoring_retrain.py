"""The retrain guard: drift -> yes; no drift, tiny window, cooldown, daily cap, disabled -> no (with the reason)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from medpipe.config import RetrainConfig
from monitoring.retrain import decide_retrain, record_retrain, should_retrain
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


def test_decision_starts_or_refuses_with_its_reason(tmp_path) -> None:
    state = tmp_path / "retrain.json"
    cfg = RetrainConfig(enabled=True, cooldown_hours=2, max_runs_per_day=2)
    started: list[str] = []

    def start(reason: str) -> str:
        started.append(reason)
        return "training run abc123"

    no_trigger = decide_retrain(_summary(True), cfg, state)  # the CLI: no starter
    assert not no_trigger.started and "cannot start training" in no_trigger.reason and not state.exists()
    first = decide_retrain(_summary(True), cfg, state, start)
    assert first.started and first.run == "training run abc123" and started == [first.reason]
    assert first.text() == f"started (training run abc123): {first.reason}" and "embedding" in first.reason
    second = decide_retrain(_summary(True), cfg, state, start)  # recorded: the cooldown refuses the next one
    assert not second.started and "cooldown" in second.reason and len(started) == 1
    assert second.text().startswith("not started: retrain cooldown")
    calm = decide_retrain(_summary(False), cfg, state, start)
    assert not calm.started and calm.reason == "no drift"
