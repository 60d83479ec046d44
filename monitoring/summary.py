"""Result types of a drift check: one :class:`Signal` per test, gathered in a :class:`DriftSummary`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "drift", "not_enough_data"]


@dataclass(frozen=True)
class Signal:
    """One signal: ``drifted`` is ``score <rule> threshold``.

    ``kind``: ``"test"`` (``score`` is a p-value, ``value`` the test statistic, ``threshold`` the corrected
    level), ``"labels"`` (accuracy on feedback labels) or ``"estimate"`` (label-free accuracy estimate: a
    warning shown with the verdict, never part of it, so the false-alarm rate stays that of the tests).
    """

    name: str
    score: float
    threshold: float
    drifted: bool
    rule: Literal["<", ">", ">="] = "<"
    detail: str = ""
    value: float | None = None
    kind: Literal["test", "labels", "estimate"] = "test"

    @property
    def p_value(self) -> float | None:
        return self.score if self.kind == "test" else None


@dataclass
class DriftSummary:
    """What a check concluded (JSON-serialisable; the report writers get the rows themselves)."""

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
    feature_scores: dict[str, float] = field(default_factory=dict)  # per-feature Holm-adjusted p-values
    alpha: float | None = None  # the check's false-alarm rate
    source: str | None = None  # where the window came from: "inference log <path>", "folder <path>", ...
    report_paths: dict[str, str] = field(default_factory=dict)

    @property
    def drifted_signals(self) -> list[Signal]:
        """Signals behind the verdict (tests and labelled accuracy); estimates only warn."""
        return [s for s in self.signals if s.drifted and s.kind != "estimate"]

    @property
    def warnings(self) -> list[Signal]:
        return [s for s in self.signals if s.drifted and s.kind == "estimate"]

    def condition(self) -> str:
        """A stable key for the alert dedup: the status plus the names of the drifted signals."""
        return self.status + ":" + ",".join(sorted(s.name for s in self.drifted_signals))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftSummary:
        data = dict(data)
        data["signals"] = [Signal(**s) for s in data.get("signals", [])]
        return cls(**data)
