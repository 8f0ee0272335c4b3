"""The dedup rules as one pure function, so every branch is testable with a frozen clock.

In order: `force_refresh` → NEW; `date_to` on or after today → NEW (the data may still change);
a finished file that still exists → REUSE; an export in flight → ATTACH; otherwise NEW.
"""

from __future__ import annotations

import enum
from datetime import date


class Decision(str, enum.Enum):
    NEW = "new"
    REUSE = "reuse"
    ATTACH = "attach"


def reuse_allowed(*, force_refresh: bool, date_to: date, today: date) -> bool:
    return not force_refresh and date_to < today


def decide(
    *, force_refresh: bool, date_to: date, today: date, file_available: bool, in_flight: bool
) -> Decision:
    if not reuse_allowed(force_refresh=force_refresh, date_to=date_to, today=today):
        return Decision.NEW
    if file_available:
        return Decision.REUSE
    if in_flight:
        return Decision.ATTACH
    return Decision.NEW
