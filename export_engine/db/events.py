"""Lifecycle events as data: the outbox every status change appends to, in the change's own transaction.

`lifecycle` calls `append` right after each conditional UPDATE succeeds, so an event exists exactly
when its transition was committed (a rolled-back transition leaves no event, a committed one cannot
lose it). Delivery happens later, outside that transaction (`export_engine.notifications`).

The event types are listed here once; add a type (e.g. a package's) by adding it to `EVENT_TYPES`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import select, text, tuple_
from sqlalchemy.orm import Session

from export_engine.db.models import Export, ExportEvent, ExportStatus

EXPORT_CREATED = "export.created"
EXPORT_RUNNING = "export.running"
EXPORT_COMPLETED = "export.completed"
EXPORT_FAILED = "export.failed"
EXPORT_CANCELED = "export.canceled"
EXPORT_EXPIRED = "export.expired"
EXPORT_SUPERSEDED = "export.superseded"

EVENT_TYPES: tuple[str, ...] = (
    EXPORT_CREATED,
    EXPORT_RUNNING,
    EXPORT_COMPLETED,
    EXPORT_FAILED,
    EXPORT_CANCELED,
    EXPORT_EXPIRED,
    EXPORT_SUPERSEDED,
)

# The status each event reports (`export.created` reports the row's: PENDING, or COMPLETED for a reuse).
EVENT_STATUS: dict[str, str] = {
    EXPORT_RUNNING: ExportStatus.RUNNING.value,
    EXPORT_COMPLETED: ExportStatus.COMPLETED.value,
    EXPORT_FAILED: ExportStatus.FAILED.value,
    EXPORT_CANCELED: ExportStatus.CANCELED.value,
    EXPORT_EXPIRED: ExportStatus.EXPIRED.value,
    EXPORT_SUPERSEDED: ExportStatus.SUPERSEDED.value,
}


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def export_payload(export: Export, status: str) -> dict[str, Any]:
    """What a receiver needs without calling back: the export's identity, request and outcome."""
    payload: dict[str, Any] = {
        "reference_id": export.reference_id,
        "status": status,
        "dataset": export.table_name,
        "date_from": export.date_from.isoformat(),
        "date_to": export.date_to.isoformat(),
        "format": export.format,
        "compression": (export.params or {}).get("compression"),
        "row_count": export.row_count,
        "file_size_bytes": export.file_size_bytes,
    }
    if export.reused_from_ref:
        payload["reused_from_ref"] = export.reused_from_ref
    if export.error and status in (ExportStatus.FAILED.value, ExportStatus.CANCELED.value):
        payload["error"] = export.error
    if status == ExportStatus.RUNNING.value:
        payload["attempt"] = export.attempts
    return payload


def append(session: Session, export: Export, event_type: str) -> ExportEvent:
    """Add one event for `export` (as the transition left it) to the session's transaction."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    event = ExportEvent(
        id=new_event_id(),
        type=event_type,
        owner=export.owner,
        reference_id=export.reference_id,
        payload=export_payload(export, EVENT_STATUS.get(event_type, export.status)),
    )
    session.add(event)
    session.flush()
    return event


Position = tuple[int, int]  # (xid, seq): where a reader of `list_for_owner` stands


def list_for_owner(
    session: Session,
    owner: str,
    *,
    after: Position = (0, 0),
    limit: int = 100,
    types: list[str] | None = None,
) -> list[ExportEvent]:
    """The owner's events after `after`, in (xid, seq) order (a client catching up reads forward).

    Only events of transactions older than every transaction still in flight are listed: no event can
    later commit before them, so a cursor past them never skips one (a `seq` cursor did: a sequence
    value is taken at INSERT and seen at COMMIT). A long writing transaction delays the listing, never
    loses an event.
    """
    settled_below = select(text("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")).scalar_subquery()
    query = select(ExportEvent).where(
        ExportEvent.owner == owner,
        ExportEvent.xid < settled_below,
        tuple_(ExportEvent.xid, ExportEvent.seq) > after,
    )
    if types:
        query = query.where(ExportEvent.type.in_(types))
    return list(session.scalars(query.order_by(ExportEvent.xid, ExportEvent.seq).limit(limit)))


_CURSOR = re.compile(r"(\d{1,19})-(\d{1,19})")


def cursor_of(last: ExportEvent | Position) -> str:
    """`<xid>-<seq>` after the last event listed (or the position given, when nothing was)."""
    xid, seq = (last.xid, last.seq) if isinstance(last, ExportEvent) else last
    return f"{xid}-{seq}"


def position_from_cursor(session: Session, cursor: str | None) -> Position | None:
    """Where `cursor_of` left the reader; a bare `<seq>` (the seq-only API's cursor) is still honoured.
    None for anything else."""
    if cursor is None:
        return (0, 0)
    if cursor.isdigit() and len(cursor) <= 18:
        xid = session.scalar(select(ExportEvent.xid).where(ExportEvent.seq == int(cursor)))
        return (xid, int(cursor)) if xid is not None else (0, 0)
    matched = _CURSOR.fullmatch(cursor)
    return (int(matched[1]), int(matched[2])) if matched else None


def envelope(event: ExportEvent) -> dict[str, Any]:
    """The event as `GET /events` lists it and webhooks carry it (Standard Webhooks' `type/timestamp/data`)."""
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": event.occurred_at.isoformat(),
        "data": {"owner": event.owner, **event.payload},
    }
