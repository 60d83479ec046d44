"""Result types of a drift check: one :class:`Signal` per test, gathered in a :class:`DriftSummary`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "drift", "not_enough_data"]


@dataclass(frozen=True)
class Signal:
    """One drift test: ``drifted`` is ``score <op> threshold`` with ``op`` = ``rule`` (e.g. ``"<"`` for p-values)."""

    name: str
    score: float
    threshold: float
    drifted: bool
    rule: Literal["<", ">", ">="] = ">"
    detail: str = ""


@dataclass
class DriftSummary:
    """What a check concluded; ``snapshot`` (the Evidently run) is kept for the writers, never serialised."""

    drift_detected: bool
    status: Status
    signals: list[Signal]
    window_size: int
    reference_size: int
    estimated_accuracy: float | None = None
    reference_accuracy: float | None = None
    accuracy: float | None = None  # real accuracy, where feedback labels exist in the window
    labelled: int = 0
    model_version: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    message: str = ""
    feature_scores: dict[str, float] = field(default_factory=dict)  # per-feature p-values
    report_paths: dict[str, str] = field(default_factory=dict)
    snapshot: Any = field(default=None, repr=False, compare=False)

    @property
    def drifted_signals(self) -> list[Signal]:
        return [s for s in self.signals if s.drifted]

    def condition(self) -> str:
        """A stable key for the alert dedup: the status plus the names of the drifted signals."""
        return self.status + ":" + ",".join(sorted(s.name for s in self.drifted_signals))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("snapshot")
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftSummary:
        data = dict(data)
        data["signals"] = [Signal(**s) for s in data.get("signals", [])]
        return cls(**data)
