"""The promotion gate: challenger vs champion, both scored by their served ONNX graphs on the same current test set.

``rules`` decides (pure), ``evaluation`` gathers the evidence (the one evaluation + the paired comparison),
``publishing`` records it (tags, artifact, model card). A challenger that is not promoted never moves
``champion``; one that is promoted moves it through the audited alias move.
"""

from __future__ import annotations

from pathlib import Path

from components.data.dataset import read_manifest, split_fingerprint
from components.evaluation.evaluate import EvaluationResult
from components.evaluation.subgroups import flat_groups
from components.registry.aliases import CHAMPION, alias_version, check_version, get_client, move_alias
from components.registry.gate.evaluation import compare, evaluate_version
from components.registry.gate.publishing import publish_decision
from components.registry.gate.rules import PROMOTED, GateCheck, GateDecision, decide
from components.registry.register import PARITY_TAG, RegisteredVersion
from components.tracking import use_tracking_store
from medpipe.config import ExportConfig, RegistryConfig
from medpipe.settings import Settings

__all__ = ["GateCheck", "GateDecision", "evaluate_and_promote"]


def evaluate_and_promote(
    version: RegisteredVersion | str,
    prepared_dir: Path,
    settings: Settings,
    *,
    registry: RegistryConfig,
    export: ExportConfig,
    actor: str = "cli",
    challenger: EvaluationResult | None = None,
) -> GateDecision:
    """Score ``version`` and the current champion on ``prepared_dir``'s test split; promote on evidence.

    ``challenger``: the version's own evaluation when the caller already has it (the training flow), so the
    gate, the run and the card show the very same figures; it is recomputed from the registered graph otherwise.
    ``registry`` holds the gate's rules and the model name; ``export`` the ONNX Runtime session options.
    """
    name = registry.model_name
    version = str(version.version if isinstance(version, RegisteredVersion) else version)
    client = get_client(settings, registry)
    use_tracking_store(settings)
    check_version(client, name, version)
    mv = client.get_model_version(name, version)
    champion = alias_version(client, name, CHAMPION)
    manifest = read_manifest(prepared_dir)

    if challenger is None or challenger.test_set != split_fingerprint(prepared_dir, "test"):
        challenger = evaluate_version(client, name, version, prepared_dir, registry=registry, export=export)
    m = registry.primary_metric
    metrics = {"challenger": challenger.headline()}
    cis = {"challenger": challenger.cis[m]}
    comparison = None
    if champion is not None and champion != version:
        champ = evaluate_version(client, name, champion, prepared_dir, registry=registry, export=export)
        metrics["champion"], cis["champion"] = champ.headline(), champ.cis[m]
        comparison = compare(challenger, champ, registry)
    parity = (mv.tags.get("parity.passed") or mv.tags.get(PARITY_TAG, "not_evaluated")).lower()
    subgroups = flat_groups(challenger.subgroups)
    checks, outcome, reason = decide(registry, version, champion, challenger.metrics, comparison, parity, subgroups)
    decision = GateDecision(
        promoted=outcome == PROMOTED,
        version=version,
        champion_before=champion,
        checks=checks,
        reason=reason,
        primary_metric=m,
        metrics=metrics,
        cis=cis,
        test_set=challenger.test_set,
        comparison=comparison,
        operating_point=challenger.operating_point.describe(),
        outcome=outcome,
    )
    publish_decision(client, registry, mv, decision, challenger, manifest)
    if decision.promoted:
        move_alias(settings, registry, CHAMPION, version, action="gate", reason=reason, actor=actor)
    return decision
