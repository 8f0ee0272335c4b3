"""The dedup rules as pure functions, so every branch is testable with a frozen clock.

A range is *final* once the period containing `date_to` has ended in the business time zone (a day
for daily datasets, a calendar month for monthly ones) and the settlement lag has passed since (rows
still change after their date: `pending` → `posted` → `reversed`). Only final data is ever reused,
and only from a file whose snapshot started after the data became final.

In order: `force_refresh` → NEW; a range that is not final yet → NEW; a finished file made from
final data that still has life left → REUSE; an export of final data in flight → ATTACH; else NEW.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class Decision(enum.StrEnum):
    NEW = "new"
    REUSE = "reuse"
    ATTACH = "attach"


def period_end(date_to: date, time_grain: str) -> date:
    """The first day after the period that contains `date_to` (its day, or its calendar month)."""
    if time_grain == "monthly":
        return date(date_to.year + date_to.month // 12, date_to.month % 12 + 1, 1)
    if time_grain == "daily":
        return date_to + timedelta(days=1)
    raise ValueError(f"unknown time grain {time_grain!r}")


def business_today(now: datetime, timezone: str) -> date:
    """The calendar day `now` falls on in the business time zone: what "today" means for a range."""
    return now.astimezone(ZoneInfo(timezone)).date()


def final_at(*, date_to: date, time_grain: str, timezone: str, settlement_lag: timedelta) -> datetime:
    """The moment the data of a range ending on `date_to` stops changing (an aware datetime)."""
    end = period_end(date_to, time_grain)
    return datetime.combine(end, time(0), tzinfo=ZoneInfo(timezone)) + settlement_lag


def decide(
    *, force_refresh: bool, now: datetime, final_since: datetime, file_available: bool, in_flight: bool
) -> Decision:
    """`file_available` / `in_flight` must already count only exports whose snapshot is final."""
    if force_refresh or now < final_since:
        return Decision.NEW
    if file_available:
        return Decision.REUSE
    if in_flight:
        return Decision.ATTACH
    return Decision.NEW
