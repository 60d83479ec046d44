"""The `gpu` concurrency slot: a lease that cannot leak, and a wait that says what it waits for.

Prefect 3 takes global-concurrency slots with a lease that the holder renews while it runs; on a
Prefect server the repossessor service frees the slots of a lease nobody renewed (holder killed).
The temporary server that each process starts when ``PREFECT_API_URL`` is unset keeps leases in
memory and runs no repossessor, so a SIGKILLed training used to keep its slot forever and every later
training waited silently. Here:

- leases live on disk (``$PREFECT_HOME/concurrency_leases``: the CLI points the temporary server's lease
  storage there, :mod:`medpipe.cli.environment`), so they outlive the process whose temporary server
  recorded them;
- with the temporary server, a waiting run does the repossessor's job itself: it releases expired
  leases and marks their holder's flow run Crashed;
- a waiting run says (a progress line on the terminal) what it waits for, who holds it and since when.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.settings import get_current_settings
from prefect.states import Crashed
from prefect.utilities.asyncutils import run_coro_as_sync

from medpipe.progress import progress

GPU_LIMIT = "gpu"


@dataclass(frozen=True)
class Lease:
    """One lease on a limit, read from the lease files."""

    id: UUID
    holder: str  # "flow run 'name' (<id>)" or "unknown holder"
    holder_run_id: UUID | None
    since: datetime
    expires: datetime


def _storage():
    """The on-disk lease storage the temporary server shares with us, or None with a real Prefect server
    (its repossessor frees expired leases; its lease storage is not ours to read)."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.server.concurrency.lease_storage.filesystem import ConcurrencyLeaseStorage

    return ConcurrencyLeaseStorage(get_current_settings().home / "concurrency_leases")


def _read_leases(storage, limit_id: UUID, ids: list[UUID], client) -> list[Lease]:
    leases = []
    for lease_id in ids:
        lease = run_coro_as_sync(storage.read_lease(lease_id))
        if lease is None or limit_id not in lease.resource_ids:
            continue
        holder = lease.metadata.holder if lease.metadata else None
        run_id = holder.id if holder is not None and holder.type == "flow_run" else None
        leases.append(Lease(lease.id, _describe_holder(client, run_id), run_id, lease.created_at, lease.expiration))
    return leases


def _describe_holder(client, run_id: UUID | None) -> str:
    if run_id is None:
        return "an unknown holder"
    try:
        return f"flow run '{client.read_flow_run(run_id).name}' ({run_id})"
    except Exception:  # noqa: BLE001 - a holder the API no longer knows is still worth naming
        return f"flow run {run_id}"


def reap_expired(name: str = GPU_LIMIT) -> list[Lease]:
    """Release the limit's expired leases (their holder stopped renewing: killed) and mark each holder's
    flow run Crashed. Returns what was freed. No-op with a real Prefect server (its repossessor does this)."""
    storage = _storage()
    if storage is None:
        return []
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
        expired = _read_leases(storage, limit.id, run_coro_as_sync(storage.read_expired_lease_ids()), client)
        for lease in expired:
            client.release_concurrency_slots_with_lease(lease.id)
            if lease.holder_run_id is not None:
                run = client.read_flow_run(lease.holder_run_id)
                if run.state is not None and not run.state.is_final():
                    message = f"its '{name}' lease expired at {lease.expires:%H:%M:%S} UTC: the process died"
                    client.set_flow_run_state(lease.holder_run_id, Crashed(message=message), force=True)
    return expired


def leases(name: str = GPU_LIMIT, *, active_only: bool = False) -> list[Lease]:
    """Who holds the limit (with expired, not yet reaped leases unless ``active_only``); empty with a real
    Prefect server, whose leases we cannot read."""
    storage = _storage()
    if storage is None:
        return []
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
        ids = run_coro_as_sync(storage.read_active_lease_ids())
        if not active_only:
            ids += run_coro_as_sync(storage.read_expired_lease_ids())
        return _read_leases(storage, limit.id, ids, client)


def orphaned_slots(name: str = GPU_LIMIT) -> int:
    """Slots taken with no lease at all (left by a run whose lease lived only in a dead server's memory).
    Only countable with the temporary server, where every lease is on disk; 0 otherwise."""
    if _storage() is None:
        return 0
    with get_client(sync_client=True) as client:
        taken = client.read_global_concurrency_limit_by_name(name).active_slots
    return max(taken - len(leases(name, active_only=True)), 0)


def free_orphaned_slots(name: str = GPU_LIMIT) -> None:
    """Set the limit's taken slots to the number of live leases."""
    leased = len(leases(name, active_only=True))
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=leased))


def ensure_limit(name: str = GPU_LIMIT, slots: int = 1) -> None:
    """Create the global limit (default 1 slot) if the server has none yet."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except Exception:  # noqa: BLE001 - ObjectNotFound: create it
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))


def _since(t: datetime) -> str:
    seconds = int((datetime.now(UTC) - t).total_seconds())
    return f"{t:%H:%M:%S} UTC ({seconds // 60}m{seconds % 60:02d}s ago)"


def waiting_message(name: str, waiting_since: datetime) -> str:
    """One line: what this run waits for, since when, who holds it and when a dead holder's lease ends."""
    now = datetime.now(UTC)
    held = [
        f"held by {h.holder} since {_since(h.since)}, "
        + (
            f"whose lease ended at {h.expires:%H:%M:%S} UTC (its process died): freeing it"
            if h.expires < now
            else f"lease ends at {h.expires:%H:%M:%S} UTC unless renewed"
        )
        for h in leases(name)
    ]
    who = "; ".join(held) or "held by another run (see Concurrency in the Prefect UI)"
    return (
        f"waiting for the '{name}' concurrency slot since {_since(waiting_since)}: {who}. "
        "A killed holder's slot frees itself when its lease ends."
    )


class _QuietAcquireTimeouts(logging.Filter):
    """Prefect logs an ERROR for every acquisition that times out; here a timeout is the poll, not a failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "ConcurrencySlotAcquisition" not in str(record.args)


@contextmanager
def hold_slot(
    name: str = GPU_LIMIT,
    *,
    lease_seconds: float = 120,
    poll_seconds: float = 15,
    report_every_s: float = 120,
    holder_run_id: str | None = None,
) -> Iterator[None]:
    """Hold one slot of ``name`` for the block, under a lease renewed every ``0.75 * lease_seconds``.

    While the slot is taken, every ``poll_seconds`` expired leases are reaped and orphaned slots freed; a
    line saying who holds the slot and since when is printed at once and then every ``report_every_s``.
    """
    ensure_limit(name)
    holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(holder_run_id)) if holder_run_id else None
    waiting_since, waited = datetime.now(UTC), False
    reported_at = 0.0
    orphan_seen = False
    quiet, prefect_log = _QuietAcquireTimeouts(), logging.getLogger("prefect._internal.concurrency")
    prefect_log.addFilter(quiet)
    with ExitStack() as stack:
        try:
            while True:
                try:
                    opts = {"lease_duration": lease_seconds, "holder": holder}
                    stack.enter_context(concurrency(name, timeout_seconds=poll_seconds, strict=True, **opts))
                    break
                except TimeoutError:
                    pass
                waited, now = True, datetime.now(UTC).timestamp()
                if now - reported_at >= report_every_s:
                    progress(waiting_message(name, waiting_since))
                    reported_at = now
                for lease in reap_expired(name):
                    ended = f"{lease.expires:%H:%M:%S} UTC"
                    progress(f"freed the '{name}' slot of {lease.holder}: its lease ended at {ended}")
                # Seen twice in a row, so that a slot taken between the count and its lease is not mistaken for one.
                orphans = orphaned_slots(name)
                if orphans and orphan_seen:
                    free_orphaned_slots(name)
                    progress(f"freed {orphans} '{name}' slot(s) held with no lease (left by a killed run)")
                orphan_seen = orphans > 0
        finally:
            prefect_log.removeFilter(quiet)
        if waited:
            progress(f"acquired the '{name}' slot after waiting since {_since(waiting_since)}")
        yield
