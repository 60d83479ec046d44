"""Append-only audit log of alias moves (JSON lines at ``settings.audit_log``).

One line per move: who (user, actor, Prefect flow run), which model and alias, from which version
to which, why, and when. ``medpipe registry history`` and ``rollback`` read it.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return os.environ.get("USER", "unknown")


def append_event(
    path: Path,
    *,
    model: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    action: str,
    reason: str,
    actor: str,
    flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Append one alias move and return it. ``action``: register | gate | promote | rollback."""
    event = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model,
        "alias": alias,
        "from_version": from_version,
        "to_version": to_version,
        "action": action,
        "reason": reason,
        "actor": actor,
        "user": _user(),
        "flow_run_id": flow_run_id,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:  # one write per line: safe for concurrent appenders
        fh.write(json.dumps(event, sort_keys=True) + "\n")
    return event


def read_events(path: Path, *, model: str | None = None, alias: str | None = None) -> list[dict[str, Any]]:
    """All events, oldest first, optionally only those of ``model`` / ``alias``. Broken lines are skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (model is None or event.get("model") == model) and (alias is None or event.get("alias") == alias):
            events.append(event)
    return events
