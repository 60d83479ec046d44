"""Rich rendering of registry results for the CLI: model versions, gate decisions, alias moves, the audit log."""

from __future__ import annotations


def print_model_versions(console, name: str, rows: list[dict], metric: str = "auc") -> None:
    """``medpipe registry list``: one row per version, newest first."""
    from rich.table import Table

    if not rows:
        console.print(f"no versions of [bold]{name}[/] registered yet (train with `medpipe run`)")
        return
    table = Table(title=f"registered model {name}")
    for col in ("version", "aliases", metric, "gate", "failed", "parity", "data version", "created", "run"):
        table.add_column(col, overflow="fold")  # wrap, never "champi…", whatever the width
    for r in rows:
        aliases = ", ".join(f"[bold green]@{a}[/]" if a == "champion" else f"@{a}" for a in r["aliases"])
        gate = {"promoted": "[green]promoted[/]", "rejected": "[red]rejected[/]"}.get(r["gate"], r["gate"])
        table.add_row(
            r["version"],
            aliases,
            str(r.get(metric, "")),
            gate,
            "" if r["failed"] in ("", "none") else r["failed"],
            r["parity"],
            r["data_version"][:12],
            r["created"],
            (r["run_id"] or "")[:8],
        )
    console.print(table)


def print_gate_decision(console, decision) -> None:
    """The promotion gate's decision with every check and the bootstrap intervals."""
    from rich.table import Table

    verdict = "[bold green]PROMOTED to champion[/]" if decision.promoted else "[bold red]REJECTED[/] (stays challenger)"
    console.print(f"version {decision.version}: {verdict} (champion before: {decision.champion_before or 'none'})")
    table = Table(show_header=True)
    for col in ("check", "result", "value", "threshold", "detail"):
        table.add_column(col)
    for c in decision.checks:
        table.add_row(
            c.name,
            "[green]pass[/]" if c.passed else "[red]FAIL[/]",
            "" if c.value is None else f"{c.value:.4f}",
            "" if c.threshold is None else f"{c.threshold:.4f}",
            c.detail,
        )
    if decision.checks:
        console.print(table)
    m = decision.primary_metric
    for who, (lo, hi) in decision.cis.items():
        console.print(f"  {who}: {m} {decision.metrics[who][m]:.4f}  95% CI [{lo:.4f}, {hi:.4f}]")
    console.print(f"reason: {decision.reason}")


def print_alias_event(console, event: dict) -> None:
    """One audited alias move."""
    console.print(
        f"[bold]{event['model']}@{event['alias']}[/]: {event['from_version'] or 'none'} -> "
        f"[bold]{event['to_version']}[/] ({event['action']} by {event['actor']}/{event['user']}: {event['reason']})"
    )


def print_audit_history(console, events: list[dict]) -> None:
    """``medpipe registry history``: every alias move, oldest first."""
    from rich.table import Table

    if not events:
        console.print("no alias moves recorded yet")
        return
    table = Table(title="alias history (audit log)")
    for col in ("time", "model", "alias", "from", "to", "action", "who", "flow run", "reason"):
        table.add_column(col, overflow="fold")
    for e in events:
        table.add_row(
            e["time"],
            e["model"],
            e["alias"],
            e["from_version"] or "-",
            e["to_version"] or "-",
            e["action"],
            f"{e['actor']}/{e['user']}",
            (e.get("flow_run_id") or "")[:8],
            e["reason"],
        )
    console.print(table)


def print_registered(console, version) -> None:
    """A new registration."""
    console.print(
        f"registered [bold]{version.name}[/] version [bold]{version.version}[/] (@challenger) from run "
        f"{version.run_id}: {version.model_uri}"
    )
