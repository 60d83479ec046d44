"""Where a gate decision lands: version tags (``gate.*``), a markdown artifact on the run, and the model card
(the version's description) with the evaluation, the operating point and the change record against the champion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from components.evaluation.evaluate import EvaluationResult
from components.registry.gate.rules import PROMOTED, REJECTED, GateDecision, fmt
from components.registry.model_card import CardContent, ChangeRecord, publish_card, render_model_card, seed_metrics
from components.tracking import version_tags
from medpipe.config import RegistryConfig

PAIRED_TAGS = ("gate.paired.auc_difference", "gate.paired.auc_difference_ci95")
LINEAGE = ("medpipe.data_version", "medpipe.git_commit", "medpipe.git_dirty", "medpipe.params_hash", "medpipe.dataset")


def decision_tags(decision: GateDecision) -> dict[str, str]:
    """The ``gate.*`` tags of one decision (the paired CI included)."""
    m = decision.primary_metric
    tags = {
        "gate.decision": decision.outcome or (PROMOTED if decision.promoted else REJECTED),
        "gate.failed": ",".join(decision.failed) or "none",
        "gate.reason": decision.reason[:4000],
        "gate.champion_before": decision.champion_before or "none",
        "gate.test_set": decision.test_set,
        "gate.operating_point": decision.operating_point,
        "gate.evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tags |= {f"gate.{c.name}": c.as_tag() for c in decision.checks}
    for who, (lo, hi) in decision.cis.items():
        tags[f"gate.{who}.{m}"] = fmt(decision.metrics[who][m])
        tags[f"gate.{who}.{m}_ci95"] = f"[{fmt(lo)}, {fmt(hi)}]"
    if decision.comparison is not None:
        c = decision.comparison
        tags["gate.paired.auc_difference"] = f"{c.difference:+.4f}"
        tags["gate.paired.auc_difference_ci95"] = f"[{c.ci[0]:+.4f}, {c.ci[1]:+.4f}]"
        tags["gate.paired.method"] = f"stratified paired bootstrap, {c.n_resamples} resamples, {c.n} images"
    return tags


def change_record(client: Any, mv: Any, champion: str | None, decision: GateDecision) -> ChangeRecord | None:
    """What changed against the champion (code, data, params), how it was validated, why (not) promoted."""
    if champion is None or champion == str(mv.version):
        return None
    champ = client.get_model_version(mv.name, champion)
    lineage = {
        key.removeprefix("medpipe."): (champ.tags.get(key, "unknown"), mv.tags.get(key, "unknown"))
        for key in LINEAGE
        if champ.tags.get(key) != mv.tags.get(key)
    }
    params: dict[str, tuple[str, str]] = {}
    if mv.run_id and champ.run_id:
        new, old = client.get_run(mv.run_id).data.params, client.get_run(champ.run_id).data.params
        params = {
            k: (old.get(k, "-"), new.get(k, "-")) for k in sorted(set(new) | set(old)) if old.get(k) != new.get(k)
        }
    validated = (
        f"challenger and champion v{champion} scored by their ONNX graphs on the same test set "
        f"({decision.test_set}); " + (decision.comparison.describe() if decision.comparison else "no comparison")
    )
    return ChangeRecord(champion=champion, lineage=lineage, params=params, validated=validated,
                        outcome=decision.outcome, reason=decision.reason)  # fmt: skip


def publish_decision(
    client: Any,
    registry: RegistryConfig,
    mv: Any,
    decision: GateDecision,
    evaluation: EvaluationResult,
    manifest: dict[str, Any],
) -> str:
    """Tags, the decision artifact and the refreshed model card of ``mv``; returns the card's markdown."""
    name, version = mv.name, str(mv.version)
    tags = decision_tags(decision)
    kept = version_tags(tags, decision.primary_metric)  # about a dozen; every check and CI is in the card
    kept |= {k: v for k, v in tags.items() if k in PAIRED_TAGS}  # the evidence of the decision stays visible
    for key, value in kept.items():
        client.set_model_version_tag(name, version, key, value)
    markdown = decision.as_markdown()
    run_id = mv.run_id
    train_params: dict[str, str] = {}
    seeds: dict[str, float] = {}
    explanation = {k: v for k, v in mv.tags.items() if k.startswith("explain.")}
    if run_id:
        client.log_text(run_id, markdown, f"gate/v{version}_gate_decision.md")
        try:
            run_data = client.get_run(run_id).data
            train_params, seeds = dict(run_data.params), seed_metrics(run_data.metrics)
            explanation |= {k: v for k, v in run_data.tags.items() if k.startswith("explain.")}  # all ROAD figures
        except Exception:  # noqa: BLE001 - the card still renders without them
            train_params, seeds = {}, {}
    card = CardContent(
        name=name,
        version=version,
        run_id=run_id,
        preprocessing=evaluation.preprocessing,
        lineage={k: v for k, v in mv.tags.items() if k.startswith("medpipe.")},
        train_params=train_params,
        metrics=evaluation.metrics,
        metrics_source=f"served ONNX graph on {evaluation.test_set}",
        cis=evaluation.cis,
        class_counts=manifest.get("counts") or {},
        reliability=evaluation.reliability,
        gate_markdown=markdown,
        export={k: v for k, v in mv.tags.items() if k.startswith(("export.", "parity."))},
        explanation=explanation,
        operating_point=evaluation.operating_point,
        subgroups=evaluation.subgroups,
        change=change_record(client, mv, decision.champion_before, decision),
        manifest=manifest,
        seeds=seeds,
    )
    text = render_model_card(card, registry)
    if run_id:
        publish_card(client, name, version, run_id, text)
    return text
