"""``evaluate_served``: the exported graph on the test split at its stored operating point -> EvaluationResult.

Every surface reads this one result: the MLflow run (``test_*`` metrics), the version tags (``test.*``), the
promotion gate, the model card, ``data/metrics/model.json`` (``dvc metrics show``), the terminal summary and the
Prefect artifact. Nothing else computes a headline figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.data.batches import split_batches
from components.data.dataset import read_manifest, split_fingerprint
from components.deploy.export import preprocessing_for
from components.evaluation.served import decision_positive, served_probabilities
from components.evaluation.subgroups import SubgroupTable, split_attributes, subgroup_metrics
from medpipe import metrics as mx
from medpipe.config import ExportConfig, RegistryConfig
from medpipe.errors import GateError
from medpipe.imaging.preprocessing import Preprocessing

BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class EvaluationResult:
    """The served model's figures on one labelled split (arrays included, for paired comparisons)."""

    metrics: dict[str, float]  # medpipe.metrics.classification_metrics at the operating point
    cis: dict[str, tuple[float, float]]  # 95% stratified-bootstrap CIs of medpipe.metrics.CI_KEYS
    operating_point: mx.OperatingPoint
    class_names: list[str]
    test_set: str  # components.data.dataset.split_fingerprint: which images these are
    probs: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    reliability: list[tuple[float, float, float, int]] = field(default_factory=list)
    n_resamples: int = 0
    preprocessing: Preprocessing | None = None  # the served graph's record (None for bare predictions)
    subgroups: SubgroupTable = field(default_factory=dict)  # attribute -> group -> n, auc, sensitivity (+ CIs)

    @property
    def positive(self) -> int | None:
        return self.operating_point.positive_index

    def headline(self) -> dict[str, float]:
        """The :data:`medpipe.metrics.HEADLINE` figures (the same numbers on every surface)."""
        return {k: self.metrics[k] for k in mx.HEADLINE if k in self.metrics}

    def flat(self) -> dict[str, float]:
        """Headline + threshold/n/per-class metrics + ``<key>_ci_low``/``<key>_ci_high``: for MLflow and DVC."""
        out = {k: v for k, v in self.metrics.items() if not (isinstance(v, float) and math.isnan(v))}
        for key, (lo, hi) in self.cis.items():
            if not (math.isnan(lo) or math.isnan(hi)):
                out[f"{key}_ci_low"], out[f"{key}_ci_high"] = lo, hi
        return out

    def confusion(self) -> np.ndarray:
        """(K, K) counts at the operating point, rows = true class."""
        k = len(self.class_names)
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (self.labels, self.operating_point.predict(self.probs)), 1)
        return cm


def evaluate_probs(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    op: mx.OperatingPoint,
    *,
    n_resamples: int,
    test_set: str,
    preprocessing: Preprocessing | None = None,
    attributes: dict[str, list[str]] | None = None,
) -> EvaluationResult:
    """The figures of given predictions at ``op`` (pure: no files, no model); per subgroup of ``attributes``."""
    return EvaluationResult(
        metrics=mx.classification_metrics(probs, labels, class_names, op),
        cis=mx.bootstrap_cis(probs, labels, op, n_resamples, BOOTSTRAP_SEED),
        operating_point=op,
        class_names=list(class_names),
        test_set=test_set,
        probs=probs,
        labels=labels,
        reliability=mx.reliability_table(probs, labels, op.positive_index),
        n_resamples=n_resamples,
        preprocessing=preprocessing,
        subgroups=subgroup_metrics(probs, labels, class_names, op, attributes or {}, n_resamples, BOOTSTRAP_SEED),
    )


def evaluate_served(
    onnx_path: Path, prepared_dir: Path, *, registry: RegistryConfig, export: ExportConfig, split: str = "test"
) -> EvaluationResult:
    """Run the graph at ``onnx_path`` (ONNX Runtime, as served, with ``export``'s session options) on
    ``prepared_dir``'s ``split`` and score it at the operating point stored with it (argmax, said so, when the graph
    has none); ``registry`` gives the positive class of that fallback and the bootstrap size."""
    pre = preprocessing_for(Path(onnx_path))
    manifest = read_manifest(prepared_dir)
    names = list(manifest["class_names"])
    if list(pre.class_names) != names:
        raise GateError(
            f"{onnx_path} predicts classes {pre.class_names} but {prepared_dir} has {names}; "
            "evaluate it on the data it was trained for"
        )
    data = split_batches(Path(prepared_dir), split)  # streamed: one batch of pixels in memory
    probs = served_probabilities(Path(onnx_path), data, export)
    op = pre.operating_point
    if op is None:
        pos = decision_positive(registry, names, manifest.get("counts", {}).get("train", {}))
        op = mx.argmax_point(names, pos, "no operating point stored with this model (exported before medpipe 0.2)")
    return evaluate_probs(
        probs,
        data.labels,
        names,
        op,
        n_resamples=registry.bootstrap_samples,
        test_set=split_fingerprint(prepared_dir, split),
        preprocessing=pre,
        attributes=split_attributes(manifest, split, len(data.labels)),
    )
