"""Per-subgroup figures from manifest attribute columns, and the gate's subgroup floor on them."""

from __future__ import annotations

import numpy as np

from components.evaluation.evaluate import evaluate_probs
from components.evaluation.subgroups import flat_groups, split_attributes
from components.registry.gate.rules import floor_checks
from medpipe.config import PipelineConfig
from medpipe.metrics import OperatingPoint


def test_subgroup_figures_and_floor() -> None:
    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 2, n)
    site = np.where(np.arange(n) < 300, "A", "B")
    signal = np.where(site == "A", 0.5, 0.05)  # the model separates site A well, site B barely
    p = np.clip(labels * signal + rng.uniform(0, 1 - signal), 0, 1)
    probs = np.stack([1 - p, p], axis=1)
    manifest = {"attributes": {"test": {"site": site.tolist(), "wrong_length": ["x"] * 3}}}
    attrs = split_attributes(manifest, "test", n)
    assert list(attrs) == ["site"]  # a column that does not describe these images is ignored
    op = OperatingPoint(rule="youden", positive_class="p", positive_index=1, threshold=0.5)
    ev = evaluate_probs(probs, labels, ["n", "p"], op, n_resamples=300, test_set="t", attributes=attrs)
    a, b = ev.subgroups["site"]["A"], ev.subgroups["site"]["B"]
    assert (a["n"], b["n"]) == (300, 100)
    assert a["auc_ci_low"] <= a["auc"] <= a["auc_ci_high"] and a["auc"] > 0.9 and b["auc"] < 0.8
    reg = PipelineConfig().with_overrides({"registry.subgroup_min_auc": 0.8, "registry.subgroup_min_n": 50}).registry
    checks = {c.name: c for c in floor_checks(reg, ev.metrics, "true", flat_groups(ev.subgroups))}
    sub = checks["subgroup_auc_min"]
    assert not sub.passed and "site=B" in sub.detail and "site=A" not in sub.detail.split("below:")[1]
