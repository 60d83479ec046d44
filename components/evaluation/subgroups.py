"""Per-subgroup figures: when the prepared manifest carries attribute columns (``attributes: {split: {column:
[value per image]}}``, e.g. sex, age band, site, scanner), AUC and sensitivity with n and 95% CIs per group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medpipe import metrics as mx

SubgroupTable = dict[str, dict[str, dict[str, float]]]  # attribute -> group -> figures (n, auc, auc_ci_low, ...)


def split_attributes(manifest: Mapping[str, Any], split: str, n: int) -> dict[str, list[str]]:
    """The attribute columns of ``split`` (one value per image, in split order); columns of another length are
    ignored (they do not describe these images)."""
    columns = (manifest.get("attributes") or {}).get(split) or {}
    return {str(k): [str(v) for v in vals] for k, vals in columns.items() if len(vals) == n}


def subgroup_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    op: mx.OperatingPoint,
    attributes: Mapping[str, Sequence[str]],
    n_resamples: int,
    seed: int = 0,
) -> SubgroupTable:
    """For each attribute and each of its values: n, AUC and sensitivity at ``op`` with stratified-bootstrap CIs
    (nan where a group lacks one of the outcomes)."""
    table: SubgroupTable = {}
    for attr, values in attributes.items():
        col = np.asarray(values)
        groups: dict[str, dict[str, float]] = {}
        for g in sorted(set(values)):
            sel = col == g
            m = mx.classification_metrics(probs[sel], labels[sel], class_names, op)
            cis = mx.bootstrap_cis(probs[sel], labels[sel], op, n_resamples, seed)
            row = {"n": float(sel.sum()), "auc": m["auc"], "sensitivity": m["sensitivity"]}
            for key in ("auc", "sensitivity"):
                row[f"{key}_ci_low"], row[f"{key}_ci_high"] = cis[key]
            groups[g] = row
        table[attr] = groups
    return table


def flat_groups(table: SubgroupTable) -> dict[str, dict[str, float]]:
    """``{"<attribute>=<group>": figures}`` for the gate's subgroup floors."""
    return {f"{attr}={g}": row for attr, groups in table.items() for g, row in groups.items()}
