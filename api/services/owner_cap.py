"""How many exports one owner may have in flight: past the cap a NEW export is refused (429).

Reuses and attaches never reach this check: it runs only where a new export is about to be created,
inside the transaction that creates it, under a per-owner advisory lock, so concurrent requests of
one owner (for different keys) count each other and the cap is exact.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.errors import TooManyExports
from export_engine.db.models import Export
from export_engine.lifecycle.transitions import ACTIVE

_OWNER_LOCK_CLASS = 0x0E4C  # two-int4 advisory lock space: never collides with the dedup key's int8 locks
RETRY_AFTER_SECONDS = 30


def check_owner_cap(session: Session, *, owner: str, limit: int) -> None:
    """Raise `TooManyExports` when `owner` already has `limit` PENDING or RUNNING exports."""
    session.execute(select(func.pg_advisory_xact_lock(_OWNER_LOCK_CLASS, func.hashtext(owner))))
    active = session.execute(
        select(func.count()).select_from(Export).where(Export.owner == owner, Export.status.in_(ACTIVE))
    ).scalar_one()
    if active >= limit:
        raise TooManyExports(
            f"you already have {active} exports PENDING or RUNNING; the limit is {limit} per owner "
            f"(OWNER_ACTIVE_EXPORT_LIMIT): retry when one has finished",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )
