"""Reading the caller's exports by their integer serial (`exports.serial_id`) and as numbered pages.

For APIs that number exports and page them by number (seed 004's `export_id`, `page`/`per_page`);
as in `export_reads`, someone else's export is indistinguishable from a missing one.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.errors import ExportNotFound
from api.security import Principal
from export_engine.db.models import Export

_BIGINT_MAX = 2**63 - 1


def get_by_serial(*, session: Session, principal: Principal, serial: str) -> Export:
    """The caller's export numbered `serial` (the path segment as sent: not a number reads as missing)."""
    number = int(serial) if serial.isascii() and serial.isdigit() else 0
    export = (
        session.scalars(
            select(Export).where(
                Export.serial_id == number, Export.owner == principal.subject, Export.kind == "export"
            )
        ).one_or_none()
        if 0 < number <= _BIGINT_MAX
        else None
    )
    if export is None:
        raise ExportNotFound(serial)
    return export


def numbered_page(
    *, session: Session, principal: Principal, page: int, per_page: int
) -> tuple[list[Export], int]:
    """Page `page` (from 1) of the caller's exports, newest first, and how many there are in all."""
    mine = (Export.owner == principal.subject, Export.kind == "export")
    total = session.scalar(select(func.count()).select_from(Export).where(*mine)) or 0
    rows = session.scalars(
        select(Export)
        .where(*mine)
        .order_by(Export.created_at.desc(), Export.serial_id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return list(rows), total
