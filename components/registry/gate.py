"""The promotion gate: challenger vs champion on the same current test set.

A challenger becomes ``champion`` only when every check passes:

- ``primary_min``: primary metric (AUC by default) >= ``registry.min_primary``;
- ``primary_vs_champion``: primary metric >= champion's - ``registry.tolerance``;
- ``sensitivity_vs_champion``: sensitivity at ``registry.specificity`` for the positive class not below the
  champion's by more than ``registry.sensitivity_tolerance``;
- ``ece``: expected calibration error < ``registry.max_ece``;
- ``export``: the ONNX parity tag on the version, when the export gate ran.

Without a champion the absolute checks decide. 95% bootstrap CIs of the primary metric are recorded for
both. The decision lands as version tags (``gate.*``), a markdown artifact, the model card and (when
promoted) an audited alias move. A rejected challenger never moves ``champion``.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from components.data.dataset import load_split, read_manifest, split_fingerprint
from components.errors import GateError, RegistryError
from components.registry.aliases import CHAMPION, alias_version, check_version, get_client, move_alias
from components.registry.model_card import CardContent, publish_card, render_model_card
from components.registry.preflight import resolve_positive_class
from components.registry.register import PARITY_TAG, RegisteredVersion
from components.tracking import use_tracking_store, version_tags
from medpipe import metrics as mx
from medpipe.config import PipelineConfig
from medpipe.imaging.preprocessing import Preprocessing
from medpipe.settings import Settings


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

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def as_markdown(self) -> str:
        head = "PROMOTED to champion" if self.promoted else "REJECTED (stays challenger)"
        lines = [
            f"### Gate decision for version {self.version}: {head}",
            "",
            f"- reason: {self.reason}",
            f"- champion before: {self.champion_before or 'none'}",
            f"- test set: `{self.test_set}`",
            "",
            "| check | result | value | threshold | detail |",
            "|---|---|---:|---:|---|",
        ]
        for c in self.checks:
            value = "" if c.value is None else f"{c.value:.4f}"
            threshold = "" if c.threshold is None else f"{c.threshold:.4f}"
            lines.append(f"| {c.name} | {'pass' if c.passed else '**FAIL**'} | {value} | {threshold} | {c.detail} |")
        if self.cis:
            m = self.primary_metric
            lines += ["", f"| model | {m} | 95% bootstrap CI |", "|---|---:|---|"]
            for who, (lo, hi) in self.cis.items():
                lines.append(f"| {who} | {_f(self.metrics.get(who, {}).get(m))} | [{_f(lo)}, {_f(hi)}] |")
        return "\n".join(lines) + "\n"


def _f(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def predict_version(name: str, version: str, images: np.ndarray) -> tuple[np.ndarray, Preprocessing]:
    """Probabilities (N, K) of registered ``name`` version ``version`` (its PyTorch flavour) on uint8 NHWC images."""
    import mlflow
    import torch

    from components.models.inference import InferenceModel, predict

    with tempfile.TemporaryDirectory(prefix="medpipe-gate-") as tmp:
        local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=tmp)
        net = mlflow.pytorch.load_model(local, map_location="cpu")
        pre = Preprocessing.load(Path(local))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    probs, _ = predict(InferenceModel(net.eval(), pre), images, device=device)
    return probs, pre


def _checks(
    cfg: PipelineConfig,
    ch: dict[str, float],
    champ: dict[str, float] | None,
    champion: str | None,
    parity: str,
    sensitivity: bool = True,
) -> list[GateCheck]:
    reg = cfg.registry
    m = reg.primary_metric
    ok = lambda v, t: not math.isnan(v) and v >= t  # noqa: E731
    checks = [
        GateCheck(
            "primary_min",
            ok(ch[m], reg.min_primary),
            ch[m],
            reg.min_primary,
            f"{m} {_f(ch[m])} must be >= registry.min_primary {reg.min_primary}",
        )
    ]
    if champ is not None:
        threshold = champ[m] - reg.tolerance
        checks.append(
            GateCheck(
                "primary_vs_champion",
                ok(ch[m], threshold),
                ch[m],
                threshold,
                f"{m} {_f(ch[m])} vs champion v{champion} {_f(champ[m])} - tolerance {reg.tolerance}",
            )
        )
    if champ is not None and sensitivity:  # only for a class params name (or the binary default)
        s, cs = ch["sensitivity"], champ["sensitivity"]
        threshold = cs - reg.sensitivity_tolerance
        checks.append(
            GateCheck(
                "sensitivity_vs_champion",
                ok(s, threshold),
                s,
                threshold,
                f"sensitivity {_f(s)} vs champion {_f(cs)} - tolerance {reg.sensitivity_tolerance}",
            )
        )
    ece = ch["ece"]
    checks.append(
        GateCheck(
            "ece",
            not math.isnan(ece) and ece < reg.max_ece,
            ece,
            reg.max_ece,
            f"expected calibration error {_f(ece)} must be < registry.max_ece {reg.max_ece}",
        )
    )
    if parity in ("true", "false"):
        checks.append(
            GateCheck(
                "export",
                parity == "true",
                None,
                None,
                f"ONNX parity check {'passed' if parity == 'true' else 'failed'}",
            )
        )
    else:
        checks.append(GateCheck("export", True, None, None, "ONNX parity not evaluated for this version"))
    return checks


def evaluate_and_promote(
    version: RegisteredVersion | str,
    prepared_dir: Path,
    cfg: PipelineConfig,
    settings: Settings,
    *,
    actor: str = "cli",
) -> GateDecision:
    """Score ``version`` and the current champion on ``prepared_dir``'s test split; promote if every check passes."""
    reg = cfg.registry
    name = reg.model_name
    version = str(version.version if isinstance(version, RegisteredVersion) else version)
    client = get_client(settings, cfg)
    use_tracking_store(settings)
    check_version(client, name, version)
    mv = client.get_model_version(name, version)
    champion = alias_version(client, name, CHAMPION)

    test = load_split(prepared_dir, "test")
    manifest = read_manifest(prepared_dir)
    class_names = list(manifest["class_names"])
    test_set = split_fingerprint(prepared_dir, "test")

    probs, pre = predict_version(name, version, test.images)
    if list(pre.class_names) != class_names:
        raise GateError(
            f"version {version} predicts classes {pre.class_names} but the test set {prepared_dir} has {class_names}; "
            "evaluate it on the data it was trained for"
        )
    positive, _ = resolve_positive_class(reg.positive_class, class_names, manifest.get("counts", {}).get("train", {}))
    pos = None if positive is None else class_names.index(positive)  # None: multi-class, macro AUC only
    seed = 0
    op = mx.argmax_point(class_names, pos, "argmax")
    ch = mx.classification_metrics(probs, test.labels, class_names, op)
    m = reg.primary_metric
    card_cis = mx.bootstrap_cis(probs, test.labels, op, reg.bootstrap_samples, seed)
    cis = {"challenger": card_cis[m]}
    metrics = {"challenger": ch}
    champ = None
    if champion is not None and champion != version:
        champ_probs, champ_pre = predict_version(name, champion, test.images)
        if list(champ_pre.class_names) != class_names:
            raise GateError(
                f"champion v{champion} has classes {champ_pre.class_names}, the test set {class_names}: the gate "
                "cannot compare them; promote manually with `medpipe registry promote VERSION --reason TEXT`"
            )
        champ = mx.classification_metrics(champ_probs, test.labels, class_names, op)
        metrics["champion"] = champ
        cis["champion"] = mx.bootstrap_cis(champ_probs, test.labels, op, reg.bootstrap_samples, seed)[m]

    if champion == version:
        checks: list[GateCheck] = []
        promoted, reason = False, f"version {version} is already the champion"
    else:
        parity = mv.tags.get("parity.passed") or mv.tags.get(PARITY_TAG, "not_evaluated")  # ParityReport tags
        checks = _checks(cfg, ch, champ, champion, parity.lower(), sensitivity=pos is not None)
        failed = [c.name for c in checks if not c.passed]
        promoted = not failed
        if promoted:
            reason = f"all gates passed; {m} {_f(ch[m])}" + (
                f" vs champion v{champion} {_f(champ[m])}" if champ else " (no champion yet: absolute gates)"
            )
        else:
            reason = "failed: " + "; ".join(c.detail for c in checks if not c.passed)
    decision = GateDecision(
        promoted=promoted,
        version=version,
        champion_before=champion,
        checks=checks,
        reason=reason,
        primary_metric=m,
        metrics=metrics,
        cis=cis,
        test_set=test_set,
    )
    _record(client, settings, cfg, mv, decision, pre, ch, card_cis, probs, test.labels, manifest)
    if promoted:
        move_alias(settings, cfg, CHAMPION, version, action="gate", reason=reason, actor=actor)
    return decision


def _record(
    client: Any,
    settings: Settings,
    cfg: PipelineConfig,
    mv: Any,
    decision: GateDecision,
    pre: Preprocessing,
    metrics: dict[str, float],
    card_cis: dict[str, tuple[float, float]],
    probs: np.ndarray,
    labels: np.ndarray,
    manifest: dict[str, Any],
) -> None:
    """Tags, markdown artifact and the refreshed model card for one decision."""
    name, version = mv.name, str(mv.version)
    m = decision.primary_metric
    tags = {
        "gate.decision": "promoted" if decision.promoted else "rejected",
        "gate.failed": ",".join(decision.failed) or "none",
        "gate.reason": decision.reason[:4000],
        "gate.champion_before": decision.champion_before or "none",
        "gate.test_set": decision.test_set,
        "gate.evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tags |= {f"gate.{c.name}": c.as_tag() for c in decision.checks}
    for who, (lo, hi) in decision.cis.items():
        tags[f"gate.{who}.{m}"] = _f(decision.metrics[who][m])
        tags[f"gate.{who}.{m}_ci95"] = f"[{_f(lo)}, {_f(hi)}]"
    for key, value in version_tags(tags, m).items():  # the full decision goes to the card below
        client.set_model_version_tag(name, version, key, value)
    markdown = decision.as_markdown()
    run_id = mv.run_id
    if run_id:
        client.log_text(run_id, markdown, f"gate/v{version}_gate_decision.md")
        try:
            train_params = dict(client.get_run(run_id).data.params)
        except Exception:  # noqa: BLE001 - the card still renders without them
            train_params = {}
        card = CardContent(
            name=name,
            version=version,
            run_id=run_id,
            preprocessing=pre,
            lineage={k: v for k, v in mv.tags.items() if k.startswith("medpipe.")},
            train_params=train_params,
            metrics=metrics,
            metrics_source=f"promotion gate on {decision.test_set}",
            cis=card_cis,
            class_counts=manifest.get("counts") or {},
            reliability=mx.reliability_table(probs, labels, decision_positive(pre)),
            gate_markdown=markdown,
            export={k: v for k, v in mv.tags.items() if k.startswith(("export.", "parity."))},
        )
        publish_card(client, name, version, run_id, render_model_card(card, cfg.registry))


def decision_positive(pre: Preprocessing) -> int | None:
    return len(pre.class_names) - 1 if len(pre.class_names) == 2 else None


def require_registered(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        raise RegistryError(f"no registered model {name!r}; train and register one first (`medpipe run`)") from None
