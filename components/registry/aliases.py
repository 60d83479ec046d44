"""Alias moves in the MLflow registry (``challenger``, ``champion``), each one audited.

Every function here that moves an alias appends one line to the audit log; ``rollback`` walks that
log to find the champion before the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from components.registry.audit import append_event, read_events
from components.tracking import RetryPolicy, current_flow_run_id, ensure_reachable, mlflow_client, with_retries
from medpipe.config import RegistryConfig
from medpipe.errors import RegistryError
from medpipe.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"


def get_client(settings: Settings, registry: RegistryConfig) -> MlflowClient:
    """A client on the configured store, after checking (with bounded retries) that it answers."""
    ensure_reachable(settings, RetryPolicy.for_registry(registry))
    return mlflow_client(settings)


def _retry(settings: Settings, registry: RegistryConfig, what: str, fn: Any) -> Any:
    return with_retries(fn, what=what, uri=settings.tracking_uri, policy=RetryPolicy.for_registry(registry))


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version behind ``name@alias``, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as err:
        if "RESOURCE_DOES_NOT_EXIST" in str(err.error_code) or "not found" in str(err).lower():
            return None
        raise


def champion_version(settings: Settings, registry: RegistryConfig) -> str | None:
    """The version that serves (``@champion``), or None when there is no champion yet."""
    client = get_client(settings, registry)
    name = registry.model_name
    return _retry(settings, registry, f"reading {name}@{CHAMPION}", lambda: alias_version(client, name, CHAMPION))


@dataclass(frozen=True)
class AliasGap:
    """Why ``name@alias`` points at no version: what the registry holds instead, for a message that says what
    to do (``medpipe serve`` prints it at start)."""

    name: str
    alias: str
    newest: str | None = None  # the newest version of ``name``; None: the model has no version at all
    gate: str = ""  # that version's gate decision (its ``gate.decision`` tag; empty: never gated)
    gate_reason: str = ""  # the gate's reason (``gate.reason``)
    models: tuple[str, ...] = ()  # when ``name`` has no version: the registered models that do hold ``alias``


def alias_gap(settings: Settings, name: str, alias: str = CHAMPION) -> AliasGap | None:
    """None when ``name@alias`` points at a version; else what the registry holds instead (one lookup each, no
    retries: a caller that only explains a missing model must not wait on a store that does not answer)."""
    client = mlflow_client(settings)
    if alias_version(client, name, alias) is not None:
        return None
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:
        held = tuple(sorted(m.name for m in client.search_registered_models() if alias in (m.aliases or {})))
        return AliasGap(name, alias, models=held)
    newest = max(versions, key=lambda mv: int(mv.version))
    tags = newest.tags or {}
    return AliasGap(name, alias, str(newest.version), tags.get("gate.decision", ""), tags.get("gate.reason", ""))


def check_version(client: MlflowClient, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(
            f"model {name!r} has no version {version!r}; see `medpipe registry list` for the registered versions"
        ) from None


def move_alias(
    settings: Settings,
    registry: RegistryConfig,
    alias: str,
    version: str,
    *,
    action: str,
    reason: str,
    actor: str,
) -> dict[str, Any]:
    """Point ``<model>@alias`` at ``version`` and append the move to the audit log; returns the event."""
    client = get_client(settings, registry)
    name = registry.model_name
    version = str(version)
    check_version(client, name, version)
    before = _retry(settings, registry, f"reading {name}@{alias}", lambda: alias_version(client, name, alias))
    _retry(
        settings,
        registry,
        f"setting {name}@{alias} -> {version}",
        lambda: client.set_registered_model_alias(name, alias, version),
    )
    event = append_event(
        settings.audit_log,
        model=name,
        alias=alias,
        from_version=before,
        to_version=version,
        action=action,
        reason=reason,
        actor=actor,
        flow_run_id=current_flow_run_id(),
    )
    if alias == CHAMPION:  # a challenger that became champion is no longer a challenger
        _clear_challenger(settings, registry, client, version, actor)
    return event


def _clear_challenger(settings: Settings, registry: RegistryConfig, client: Any, version: str, actor: str) -> None:
    name = registry.model_name
    challenger = _retry(
        settings, registry, f"reading {name}@{CHALLENGER}", lambda: alias_version(client, name, CHALLENGER)
    )
    if challenger != version:
        return
    _retry(
        settings,
        registry,
        f"removing {name}@{CHALLENGER}",
        lambda: client.delete_registered_model_alias(name, CHALLENGER),
    )
    append_event(
        settings.audit_log,
        model=name,
        alias=CHALLENGER,
        from_version=version,
        to_version=None,
        action="clear",
        reason=f"v{version} became {CHAMPION}",
        actor=actor,
        flow_run_id=current_flow_run_id(),
    )


def promote(
    version: str, reason: str, settings: Settings, registry: RegistryConfig, actor: str = "cli"
) -> dict[str, Any]:
    """Manual override: make ``version`` the champion without the gate (audited, reason required)."""
    if not reason or not reason.strip():
        raise RegistryError("a manual promotion needs a reason: pass --reason TEXT (it is written to the audit log)")
    event = move_alias(settings, registry, CHAMPION, str(version), action="promote", reason=reason.strip(), actor=actor)
    client = get_client(settings, registry)
    client.set_model_version_tag(registry.model_name, str(version), "gate.override", reason.strip())
    return event


def previous_champion(settings: Settings, registry: RegistryConfig, current: str | None) -> str | None:
    """The champion before ``current`` according to the audit log (rollbacks undo their promotion)."""
    stack: list[str] = []
    for event in read_events(settings.audit_log, model=registry.model_name, alias=CHAMPION):
        if event.get("action") == "rollback":
            if stack:
                stack.pop()
            if event.get("to_version") and (not stack or stack[-1] != event["to_version"]):
                stack.append(event["to_version"])  # a rollback onto a version the log did not hold
        elif event.get("to_version"):
            stack.append(str(event["to_version"]))
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


def rollback(
    settings: Settings, registry: RegistryConfig, actor: str = "cli", reason: str | None = None
) -> dict[str, Any]:
    """Move ``champion`` back to the previous champion (from the audit log); returns the audit event."""
    current = champion_version(settings, registry)
    if current is None:
        raise RegistryError(f"model {registry.model_name!r} has no champion to roll back")
    before = previous_champion(settings, registry, current)
    if before is None:
        raise RegistryError(
            f"no previous champion of {registry.model_name!r} in the audit log {settings.audit_log}; "
            "use `medpipe registry promote VERSION --reason TEXT` to choose one"
        )
    return move_alias(
        settings,
        registry,
        CHAMPION,
        before,
        action="rollback",
        reason=reason or f"rollback from version {current}",
        actor=actor,
    )


def history(
    settings: Settings, registry: RegistryConfig | None = None, alias: str | None = None
) -> list[dict[str, Any]]:
    """Every audited alias move, oldest first (only ``registry``'s model when given; only ``alias`` when given)."""
    model = registry.model_name if registry is not None else None
    return read_events(settings.audit_log, model=model, alias=alias)


def list_versions(settings: Settings, registry: RegistryConfig) -> list[dict[str, Any]]:
    """Every version of ``registry``'s model, newest first: aliases, gate decision, metric, lineage, parity."""
    from datetime import UTC, datetime

    client = get_client(settings, registry)
    name = registry.model_name
    metric = registry.primary_metric
    found = _retry(settings, registry, f"listing {name}", lambda: client.search_model_versions(f"name='{name}'"))
    aliases: dict[str, list[str]] = {}
    if found:
        for alias, version in (client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(found, key=lambda v: int(v.version), reverse=True):
        tags = mv.tags or {}
        rows.append(
            {
                "version": str(mv.version),
                "aliases": sorted(aliases.get(str(mv.version), [])),
                "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"),
                "run_id": mv.run_id,
                "gate": tags.get("gate.decision", "not evaluated"),
                "failed": tags.get("gate.failed", ""),
                metric: tags.get(f"gate.challenger.{metric}") or tags.get(f"test.{metric}", ""),
                "data_version": tags.get("medpipe.data_version", ""),
                "parity": tags.get("export.parity_passed", ""),
            }
        )
    return rows
