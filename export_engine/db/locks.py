"""Advisory locks shared by the gateway and the engine."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session


def dedup_lock_id(dedup_key: str) -> int:
    """The transaction-scoped advisory lock id for a dedup key (its first 64 bits)."""
    return int.from_bytes(bytes.fromhex(dedup_key[:16]), "big", signed=True)


def lock_dedup_key(session: Session, dedup_key: str) -> None:
    """Serialise everything that decides about one key (create, reuse, delete, expire) in PostgreSQL."""
    session.execute(select(func.pg_advisory_xact_lock(dedup_lock_id(dedup_key))))
