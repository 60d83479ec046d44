"""The gate's rules as pure logic: floors, the paired gain, ties, outcomes and the decision's markdown."""

from __future__ import annotations

import math

from components.registry.gate.rules import KEPT, PROMOTED, REJECTED, GateDecision, decide, floor_checks
from medpipe.config import PipelineConfig
from medpipe.metrics import PairedComparison

REG = PipelineConfig().with_overrides(
    {"registry.min_primary": 0.75, "registry.tolerance": 0.01, "registry.min_gain": 0.005,
     "registry.min_sensitivity": 0.7, "registry.subgroup_min_auc": 0.7, "registry.subgroup_min_n": 20}
).registry  # fmt: skip


def _m(auc: float, sens: float = 0.8, ece: float = 0.05) -> dict[str, float]:
    return {"auc": auc, "sensitivity": sens, "ece": ece}


def _cmp(diff: float, lo: float, hi: float) -> PairedComparison:
    return PairedComparison(0.8 + diff, 0.8, diff, (lo, hi), 0.95, 1000, 156)


def _failed(checks) -> set[str]:
    return {c.name for c in checks if not c.passed}


def test_first_version_needs_the_floors_only() -> None:
    checks, outcome, reason = decide(REG, "1", None, _m(0.80), None, "not_evaluated")
    assert outcome == PROMOTED and "first version" in reason
    assert [c.name for c in checks] == ["primary_min", "sensitivity_min", "ece", "subgroup_auc_min", "export"]
    for metrics, failed in ((_m(0.74), "primary_min"), (_m(0.8, sens=0.6), "sensitivity_min"),
                            (_m(0.8, ece=0.3), "ece"), (_m(math.nan), "primary_min")):  # fmt: skip
        checks, outcome, _ = decide(REG, "1", None, metrics, None, "true")
        assert outcome == REJECTED and _failed(checks) == {failed}


def test_a_tie_keeps_the_champion_and_records_the_paired_ci() -> None:
    checks, outcome, reason = decide(REG, "2", "1", _m(0.85), _cmp(0.0003, -0.012, 0.013), "true")
    assert outcome == KEPT and _failed(checks) == {"gain"}
    assert reason.startswith("kept champion: no significant gain") and "[-0.0120, +0.0130]" in reason
    # a gain above min_gain whose CI reaches below -tolerance is not evidence either
    assert decide(REG, "2", "1", _m(0.85), _cmp(0.02, -0.03, 0.07), "true")[1] == KEPT


def test_a_clear_gain_promotes_and_a_failed_floor_still_rejects() -> None:
    checks, outcome, reason = decide(REG, "2", "1", _m(0.90), _cmp(0.08, 0.03, 0.13), "true")
    assert outcome == PROMOTED and not _failed(checks) and "significant gain over champion v1" in reason
    checks, outcome, reason = decide(REG, "2", "1", _m(0.90, sens=0.5), _cmp(0.08, 0.03, 0.13), "true")
    assert outcome == REJECTED and _failed(checks) == {"sensitivity_min"} and reason.startswith("failed:")
    assert decide(REG, "2", "1", _m(0.9), _cmp(0.08, 0.03, 0.13), "false")[1] == REJECTED  # export parity failed
    assert decide(REG, "1", "1", _m(0.9), None, "true")[1] == KEPT  # already the champion


def test_subgroup_floors_apply_to_groups_large_enough() -> None:
    groups = {"site=A": {"n": 80, "auc": 0.85}, "site=B": {"n": 25, "auc": 0.62}, "site=C": {"n": 5, "auc": 0.3}}
    checks = floor_checks(REG, _m(0.85), "true", groups)
    (sub,) = [c for c in checks if c.name == "subgroup_auc_min"]
    assert not sub.passed and "site=B 0.6200" in sub.detail and "site=C" not in sub.detail and sub.value == 0.62
    del groups["site=B"]
    assert all(c.passed for c in floor_checks(REG, _m(0.85), "true", groups))


def test_decision_markdown_names_outcome_checks_and_comparison() -> None:
    checks, outcome, reason = decide(REG, "4", "3", _m(0.85), _cmp(0.001, -0.01, 0.012), "true")
    d = GateDecision(False, "4", "3", checks, reason, comparison=_cmp(0.001, -0.01, 0.012), outcome=outcome)
    md = d.as_markdown()
    assert "KEPT CHAMPION" in md and "**FAIL**" in md and "paired bootstrap 95% CI [-0.0100, +0.0120]" in md
    assert d.failed == ["gain"]
    assert checks[0].as_tag() == "pass value=0.8500 threshold=0.7500: auc 0.8500 must be >= registry.min_primary 0.75"


def test_sensitivity_floor_only_for_a_positive_class() -> None:
    """Multi-class data with no class named in params: no sensitivity rule (macro AUC decides); binary data whose
    sensitivity is undefined still fails the floor."""
    multi = {**_m(0.9, sens=math.nan), "prevalence": math.nan}
    assert "sensitivity_min" not in _failed(floor_checks(REG, multi, "true"))
    binary = {**_m(0.9, sens=math.nan), "prevalence": 0.3}
    assert "sensitivity_min" in _failed(floor_checks(REG, binary, "true"))
