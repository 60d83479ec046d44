"""Alias moves in the MLflow registry (``challenger``, ``champion``), each one audited.

Every function here that moves an alias appends one line to the audit log; ``rollback`` walks that
log to find the champion before the current one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from components.registry.audit import append_event, read_events
from components.tracking import RetryPolicy, current_flow_run_id, ensure_reachable, mlflow_client, with_retries
from medpipe.config import PipelineConfig
from medpipe.errors import RegistryError
from medpipe.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"


def get_client(settings: Settings, cfg: PipelineConfig) -> MlflowClient:
    """A client on the configured store, after checking (with bounded retries) that it answers."""
    ensure_reachable(settings, RetryPolicy.for_registry(cfg.registry))
    return mlflow_client(settings)


def _retry(settings: Settings, cfg: PipelineConfig, what: str, fn: Any) -> Any:
    return with_retries(fn, what=what, uri=settings.tracking_uri, policy=RetryPolicy.for_registry(cfg.registry))


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version behind ``name@alias``, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as err:
        if "RESOURCE_DOES_NOT_EXIST" in str(err.error_code) or "not found" in str(err).lower():
            return None
        raise


def champion_version(settings: Settings, cfg: PipelineConfig) -> str | None:
    """The version that serves (``@champion``), or None when there is no champion yet."""
    client = get_client(settings, cfg)
    name = cfg.registry.model_name
    return _retry(settings, cfg, f"reading {name}@{CHAMPION}", lambda: alias_version(client, name, CHAMPION))


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
    cfg: PipelineConfig,
    alias: str,
    version: str,
    *,
    action: str,
    reason: str,
    actor: str,
) -> dict[str, Any]:
    """Point ``<model>@alias`` at ``version`` and append the move to the audit log; returns the event."""
    client = get_client(settings, cfg)
    name = cfg.registry.model_name
    version = str(version)
    check_version(client, name, version)
    before = _retry(settings, cfg, f"reading {name}@{alias}", lambda: alias_version(client, name, alias))
    _retry(
        settings,
        cfg,
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
        _clear_challenger(settings, cfg, client, version, actor)
    return event


def _clear_challenger(settings: Settings, cfg: PipelineConfig, client: Any, version: str, actor: str) -> None:
    name = cfg.registry.model_name
    challenger = _retry(settings, cfg, f"reading {name}@{CHALLENGER}", lambda: alias_version(client, name, CHALLENGER))
    if challenger != version:
        return
    _retry(
        settings, cfg, f"removing {name}@{CHALLENGER}", lambda: client.delete_registered_model_alias(name, CHALLENGER)
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


def promote(version: str, reason: str, settings: Settings, cfg: PipelineConfig, actor: str = "cli") -> dict[str, Any]:
    """Manual override: make ``version`` the champion without the gate (audited, reason required)."""
    if not reason or not reason.strip():
        raise RegistryError("a manual promotion needs a reason: pass --reason TEXT (it is written to the audit log)")
    event = move_alias(settings, cfg, CHAMPION, str(version), action="promote", reason=reason.strip(), actor=actor)
    client = get_client(settings, cfg)
    client.set_model_version_tag(cfg.registry.model_name, str(version), "gate.override", reason.strip())
    return event


def previous_champion(settings: Settings, cfg: PipelineConfig, current: str | None) -> str | None:
    """The champion before ``current`` according to the audit log (rollbacks undo their promotion)."""
    stack: list[str] = []
    for event in read_events(settings.audit_log, model=cfg.registry.model_name, alias=CHAMPION):
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


def rollback(settings: Settings, cfg: PipelineConfig, actor: str = "cli", reason: str | None = None) -> dict[str, Any]:
    """Move ``champion`` back to the previous champion (from the audit log); returns the audit event."""
    current = champion_version(settings, cfg)
    if current is None:
        raise RegistryError(f"model {cfg.registry.model_name!r} has no champion to roll back")
    before = previous_champion(settings, cfg, current)
    if before is None:
        raise RegistryError(
            f"no previous champion of {cfg.registry.model_name!r} in the audit log {settings.audit_log}; "
            "use `medpipe registry promote VERSION --reason TEXT` to choose one"
        )
    return move_alias(
        settings,
        cfg,
        CHAMPION,
        before,
        action="rollback",
        reason=reason or f"rollback from version {current}",
        actor=actor,
    )


def history(settings: Settings, cfg: PipelineConfig | None = None, alias: str | None = None) -> list[dict[str, Any]]:
    """Every audited alias move, oldest first (only ``cfg``'s model when given; only ``alias`` when given)."""
    model = cfg.registry.model_name if cfg is not None else None
    return read_events(settings.audit_log, model=model, alias=alias)


def list_versions(settings: Settings, cfg: PipelineConfig) -> list[dict[str, Any]]:
    """Every version of ``cfg``'s model, newest first: aliases, gate decision, metric, lineage, parity."""
    from datetime import UTC, datetime

    client = get_client(settings, cfg)
    name = cfg.registry.model_name
    metric = cfg.registry.primary_metric
    found = _retry(settings, cfg, f"listing {name}", lambda: client.search_model_versions(f"name='{name}'"))
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
