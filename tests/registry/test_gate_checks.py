"""The gate's checks as pure logic (no store): thresholds, champion comparison, export gate, positive class."""

from __future__ import annotations

import math

import pytest

from components.errors import GateError
from components.registry.gate import GateDecision, _checks
from components.registry.positive_class import positive_index
from medpipe.config import PipelineConfig

CFG = PipelineConfig().with_overrides({"registry.min_primary": 0.75, "registry.tolerance": 0.01})


def _m(auc: float, sens: float = 0.8, ece: float = 0.05) -> dict[str, float]:
    return {"auc": auc, "sensitivity": sens, "ece": ece}


def _failed(checks) -> set[str]:
    return {c.name for c in checks if not c.passed}


def test_no_champion_uses_absolute_gates_only() -> None:
    checks = _checks(CFG, _m(0.80), None, None, "not_evaluated")
    assert [c.name for c in checks] == ["primary_min", "ece", "export"] and not _failed(checks)
    assert _failed(_checks(CFG, _m(0.74), None, None, "not_evaluated")) == {"primary_min"}
    assert _failed(_checks(CFG, _m(0.80, ece=0.3), None, None, "not_evaluated")) == {"ece"}


def test_champion_comparison_uses_tolerances() -> None:
    champ = _m(0.90, sens=0.80)
    assert not _failed(_checks(CFG, _m(0.895, sens=0.76), champ, "1", "true"))  # within both tolerances
    assert _failed(_checks(CFG, _m(0.88, sens=0.80), champ, "1", "true")) == {"primary_vs_champion"}
    assert _failed(_checks(CFG, _m(0.95, sens=0.70), champ, "1", "true")) == {"sensitivity_vs_champion"}


def test_export_gate_and_nan_fail() -> None:
    assert _failed(_checks(CFG, _m(0.9), None, None, "false")) == {"export"}
    assert _failed(_checks(CFG, _m(math.nan), None, None, "true")) == {"primary_min"}
    checks = _checks(CFG, _m(0.6), _m(0.9), "3", "true")
    decision = GateDecision(False, "4", "3", checks, "failed")
    md = decision.as_markdown()
    assert "REJECTED" in md and "**FAIL**" in md and "primary_vs_champion" in md
    assert decision.failed == ["primary_min", "primary_vs_champion"]
    assert checks[0].as_tag() == "FAIL value=0.6000 threshold=0.7500: auc 0.6000 must be >= registry.min_primary 0.75"


def test_positive_class_by_name_index_or_last() -> None:
    names = ["malignant", "normal_or_benign"]
    assert positive_index(None, names) == 1
    assert positive_index("malignant", names) == 0
    assert positive_index(0, names) == 0 and positive_index("1", names) == 1
    with pytest.raises(GateError, match="not a class"):
        positive_index("benign", names)
    with pytest.raises(GateError, match="outside"):
        positive_index(5, names)
