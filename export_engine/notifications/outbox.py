"""The outbox's two claims: events fanned out into deliveries, and due deliveries leased to a sender.

Both claim rows with `FOR UPDATE SKIP LOCKED`, so several senders never take the same row.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import sessionmaker

from export_engine.db.events import EXPORT_COMPLETED, EXPORT_FAILED
from export_engine.db.models import Delivery, ExportEvent, TelegramLink, WebhookEndpoint

TELEGRAM_EVENTS = (EXPORT_COMPLETED, EXPORT_FAILED)


def fan_out(sessions: sessionmaker, *, telegram: bool, limit: int = 200) -> int:
    """Turn undispatched events into one delivery per subscribed endpoint (and linked chat), at once."""
    with sessions.begin() as session:
        pending = list(
            session.scalars(
                select(ExportEvent)
                .where(ExportEvent.dispatched_at.is_(None))
                .order_by(ExportEvent.seq)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not pending:
            return 0
        owners = {event.owner for event in pending}
        endpoints = list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.owner.in_(owners))))
        chats: dict[str, str | None] = {}
        if telegram:
            linked = select(TelegramLink.owner, TelegramLink.chat_id).where(
                TelegramLink.owner.in_(owners), TelegramLink.chat_id.is_not(None)
            )
            chats = {owner: chat for owner, chat in session.execute(linked)}
        rows = []
        for event in pending:
            for endpoint in endpoints:
                if endpoint.owner == event.owner and event.type in endpoint.events:
                    rows.append({"event_id": event.id, "channel": "webhook", "target": endpoint.id})
            chat = chats.get(event.owner)
            if chat and event.type in TELEGRAM_EVENTS:
                rows.append({"event_id": event.id, "channel": "telegram", "target": chat})
        if rows:
            session.execute(insert(Delivery).values(rows).on_conflict_do_nothing())
        session.execute(
            update(ExportEvent)
            .where(ExportEvent.seq.in_([e.seq for e in pending]))
            .values(dispatched_at=func.now())
        )
        return len(pending)


def claim_due(sessions: sessionmaker, lease: timedelta, limit: int = 50) -> list[Delivery]:
    """Lease due deliveries: a sender that dies mid-attempt loses only its lease."""
    with sessions.begin() as session:
        due = (
            select(Delivery.id)
            .where(Delivery.status == "pending", Delivery.next_attempt_at <= func.now())
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(
            session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(due))
                .values(next_attempt_at=func.now() + lease, attempts=Delivery.attempts + 1)
                .returning(Delivery)
                .execution_options(synchronize_session=False)
            )
        )
