"""The gate's rules, pure: from the two evaluations and the paired comparison to a decision.

A challenger becomes champion only with evidence:

- floors (always): ``primary_min`` (primary metric >= ``registry.min_primary``), ``sensitivity_min`` (test
  sensitivity at its operating point >= ``registry.min_sensitivity``), ``ece`` (< ``registry.max_ece``), the
  subgroup floors (``registry.subgroup_min_*``, groups of at least ``registry.subgroup_min_n``) and the export
  parity check;
- against a champion: ``gain`` - the AUC difference on the same test images must be above ``registry.min_gain``
  and its paired-bootstrap 95% CI lower bound above ``-registry.tolerance``. A tie keeps the champion.

The first version needs the floors only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from medpipe.config import RegistryConfig
from medpipe.metrics import PairedComparison

PROMOTED, KEPT, REJECTED = "promoted", "kept_champion", "rejected"


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str

    def as_tag(self) -> str:
        nums = f" value={self.value:.4f}" if self.value is not None else ""
        nums += f" threshold={self.threshold:.4f}" if self.threshold is not None else ""
        return f"{'pass' if self.passed else 'FAIL'}{nums}: {self.detail}"


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    version: str
    champion_before: str | None
    checks: list[GateCheck]
    reason: str
    primary_metric: str = "auc"
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # "challenger"/"champion" -> metrics
    cis: dict[str, tuple[float, float]] = field(default_factory=dict)  # "challenger"/"champion" -> primary CI
    test_set: str = ""
    comparison: PairedComparison | None = None
    operating_point: str = ""
    outcome: str = ""  # promoted | kept_champion | rejected

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def as_markdown(self) -> str:
        head = {PROMOTED: "PROMOTED to champion", KEPT: "KEPT CHAMPION (no significant gain)"}.get(
            self.outcome or (PROMOTED if self.promoted else REJECTED), "REJECTED (stays challenger)"
        )
        lines = [
            f"### Gate decision for version {self.version}: {head}",
            "",
            f"- reason: {self.reason}",
            f"- champion before: {self.champion_before or 'none'}",
            f"- test set: `{self.test_set}`",
        ]
        if self.operating_point:
            lines.append(f"- operating point: {self.operating_point}")
        if self.comparison is not None:
            lines.append(f"- paired comparison: {self.comparison.describe()}")
        lines += ["", "| check | result | value | threshold | detail |", "|---|---|---:|---:|---|"]
        for c in self.checks:
            value = "" if c.value is None else f"{c.value:.4f}"
            threshold = "" if c.threshold is None else f"{c.threshold:.4f}"
            lines.append(f"| {c.name} | {'pass' if c.passed else '**FAIL**'} | {value} | {threshold} | {c.detail} |")
        if self.cis:
            m = self.primary_metric
            lines += ["", f"| model | {m} | 95% bootstrap CI |", "|---|---:|---|"]
            for who, (lo, hi) in self.cis.items():
                lines.append(f"| {who} | {fmt(self.metrics.get(who, {}).get(m))} | [{fmt(lo)}, {fmt(hi)}] |")
        return "\n".join(lines) + "\n"


def fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _at_least(v: float, t: float) -> bool:
    return not math.isnan(v) and v >= t


def floor_checks(
    reg: RegistryConfig, ch: Mapping[str, float], parity: str, subgroups: Mapping[str, Mapping[str, float]] = {}
) -> list[GateCheck]:
    """The absolute checks every challenger must pass (``subgroups``: group -> its metrics incl. ``n``)."""
    m = reg.primary_metric
    checks = [
        GateCheck("primary_min", _at_least(ch[m], reg.min_primary), ch[m], reg.min_primary,
                  f"{m} {fmt(ch[m])} must be >= registry.min_primary {reg.min_primary}"),
    ]  # fmt: skip
    sens = ch.get("sensitivity", math.nan)
    no_positive = math.isnan(ch.get("prevalence", math.nan))  # multi-class data and no class named in params
    if math.isnan(sens) and (no_positive or reg.min_sensitivity == 0):
        checks.append(GateCheck("sensitivity_min", True, None, None, "no positive class: sensitivity not floored"))
    else:
        checks.append(
            GateCheck("sensitivity_min", _at_least(sens, reg.min_sensitivity), sens, reg.min_sensitivity,
                      f"sensitivity at the operating point {fmt(sens)} must be >= registry.min_sensitivity "
                      f"{reg.min_sensitivity}")
        )  # fmt: skip
    ece = ch["ece"]
    checks.append(
        GateCheck("ece", not math.isnan(ece) and ece < reg.max_ece, ece, reg.max_ece,
                  f"expected calibration error {fmt(ece)} must be < registry.max_ece {reg.max_ece}")
    )  # fmt: skip
    checks += subgroup_checks(reg, subgroups)
    if parity in ("true", "false"):
        ok = parity == "true"
        checks.append(GateCheck("export", ok, None, None, f"ONNX parity check {'passed' if ok else 'failed'}"))
    else:
        checks.append(GateCheck("export", True, None, None, "ONNX parity not evaluated for this version"))
    return checks


def subgroup_checks(reg: RegistryConfig, subgroups: Mapping[str, Mapping[str, float]]) -> list[GateCheck]:
    """One check per floored metric over the subgroups with at least ``registry.subgroup_min_n`` cases."""
    checks = []
    for metric, floor in (("auc", reg.subgroup_min_auc), ("sensitivity", reg.subgroup_min_sensitivity)):
        if floor is None:
            continue
        sized = {g: s for g, s in subgroups.items() if s.get("n", 0) >= reg.subgroup_min_n}
        low = {g: s[metric] for g, s in sized.items() if not _at_least(s.get(metric, math.nan), floor)}
        worst = min((s.get(metric, math.nan) for s in sized.values()), default=None)
        detail = (
            f"{metric} in every subgroup of >= {reg.subgroup_min_n} cases must be >= {floor}"
            + (f"; below: {', '.join(f'{g} {fmt(v)}' for g, v in sorted(low.items()))}" if low else "")
            + ("" if sized else " (no subgroup large enough)")
        )
        checks.append(GateCheck(f"subgroup_{metric}_min", not low, worst, floor, detail))
    return checks


def gain_check(reg: RegistryConfig, comparison: PairedComparison, champion: str) -> GateCheck:
    """The challenger's AUC gain over the champion on the same images: point > min_gain and CI low > -tolerance."""
    lo, _ = comparison.ci
    ok = comparison.difference > reg.min_gain and not math.isnan(lo) and lo > -reg.tolerance
    detail = (
        f"AUC gain over champion v{champion} must be > registry.min_gain {reg.min_gain} with paired 95% CI lower "
        f"bound > -registry.tolerance {-reg.tolerance}; got {comparison.describe()}"
    )
    return GateCheck("gain", ok, comparison.difference, reg.min_gain, detail)


def decide(
    reg: RegistryConfig,
    version: str,
    champion: str | None,
    challenger_metrics: Mapping[str, float],
    comparison: PairedComparison | None,
    parity: str,
    subgroups: Mapping[str, Mapping[str, float]] = {},
) -> tuple[list[GateCheck], str, str]:
    """``(checks, outcome, reason)`` for ``version`` against ``champion`` (None: first version)."""
    if champion == version:
        return [], KEPT, f"version {version} is already the champion"
    checks = floor_checks(reg, challenger_metrics, parity, subgroups)
    floors_failed = [c for c in checks if not c.passed]
    if champion is not None:
        if comparison is None:
            raise ValueError("a champion exists: the paired comparison is required")
        checks.append(gain_check(reg, comparison, champion))
    if floors_failed:
        return checks, REJECTED, "failed: " + "; ".join(c.detail for c in floors_failed)
    if champion is None:
        m = reg.primary_metric
        return checks, PROMOTED, f"first version: floors passed ({m} {fmt(challenger_metrics[m])})"
    assert comparison is not None
    lo, hi = comparison.ci
    if not checks[-1].passed:
        return (
            checks,
            KEPT,
            (
                f"kept champion: no significant gain (AUC difference {comparison.difference:+.4f}, paired 95% CI "
                f"[{lo:+.4f}, {hi:+.4f}]; needs > {reg.min_gain} with CI lower bound > {-reg.tolerance})"
            ),
        )
    return (
        checks,
        PROMOTED,
        (
            f"significant gain over champion v{champion}: AUC difference {comparison.difference:+.4f}, paired 95% CI "
            f"[{lo:+.4f}, {hi:+.4f}]; floors passed"
        ),
    )
