"""The finality rule and the decision table, with a frozen clock."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from export_engine.core.dedup import Decision, decide, final_at, period_end

NO_LAG = timedelta(0)
DAY = timedelta(hours=24)


def _final(date_to: date, grain: str = "daily", tz: str = "UTC", lag: timedelta = NO_LAG) -> datetime:
    return final_at(date_to=date_to, time_grain=grain, timezone=tz, settlement_lag=lag)


@pytest.mark.parametrize(
    ("date_to", "grain", "expected"),
    [
        (date(2026, 12, 3), "daily", date(2026, 12, 4)),
        (date(2026, 12, 31), "daily", date(2027, 1, 1)),  # year end
        (date(2028, 2, 28), "daily", date(2028, 2, 29)),  # leap day
        (date(2026, 12, 1), "monthly", date(2027, 1, 1)),  # a month still in progress, December
        (date(2026, 11, 30), "monthly", date(2026, 12, 1)),
        (date(2026, 2, 1), "monthly", date(2026, 3, 1)),
    ],
)
def test_period_end_follows_the_grain(date_to, grain, expected):
    assert period_end(date_to, grain) == expected


def test_a_range_ending_today_becomes_final_only_after_midnight_plus_the_lag():
    final = _final(date(2026, 12, 3), lag=DAY)
    assert final == datetime(2026, 12, 5, tzinfo=UTC)
    # Day D at 10:00: not final. D+1 at 00:05 (the reviewed bug: reused then): still not final.
    assert final > datetime(2026, 12, 3, 10, tzinfo=UTC)
    assert final > datetime(2026, 12, 4, 0, 5, tzinfo=UTC)
    assert final <= datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


def test_midnight_is_the_business_time_zones_midnight():
    tokyo = _final(date(2026, 12, 3), tz="Asia/Tokyo")
    new_york = _final(date(2026, 12, 3), tz="America/New_York")
    assert tokyo == datetime(2026, 12, 4, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert tokyo.astimezone(UTC) == datetime(2026, 12, 3, 15, tzinfo=UTC)
    assert new_york.astimezone(UTC) == datetime(2026, 12, 4, 5, tzinfo=UTC)
    # 2026-12-03 20:00 UTC: the 3rd is over in Tokyo, not in New York.
    now = datetime(2026, 12, 3, 20, tzinfo=UTC)
    assert now >= tokyo and now < new_york


def test_a_monthly_dataset_is_final_only_after_the_month_ends():
    # 2026-12-03: a range ending 2026-12-01 still contains December's row, which keeps changing.
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert _final(date(2026, 12, 1), grain="monthly") > now
    assert _final(date(2026, 11, 30), grain="monthly") <= now
    assert _final(date(2026, 11, 30), grain="monthly", lag=DAY) == datetime(2026, 12, 2, tzinfo=UTC)


def test_daylight_saving_days_are_not_24_hours():
    # Europe/Berlin leaves DST on 2026-10-25: the day ends at 23:00 UTC, not 22:00.
    assert _final(date(2026, 10, 25), tz="Europe/Berlin").astimezone(UTC) == datetime(
        2026, 10, 25, 23, tzinfo=UTC
    )


NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("force_refresh", "final_since", "file_available", "in_flight", "expected"),
    [
        (True, NOW - DAY, True, True, Decision.NEW),  # force_refresh wins over everything
        (False, NOW + timedelta(hours=1), True, True, Decision.NEW),  # not final yet
        (False, NOW, True, True, Decision.REUSE),  # final from this instant
        (False, NOW - DAY, True, True, Decision.REUSE),  # final: reuse the file
        (False, NOW - DAY, False, True, Decision.ATTACH),  # no file yet, one in flight: attach
        (False, NOW - DAY, False, False, Decision.NEW),  # nothing to reuse or attach
    ],
)
def test_rules_in_order(force_refresh, final_since, file_available, in_flight, expected):
    decision = decide(
        force_refresh=force_refresh,
        now=NOW,
        final_since=final_since,
        file_available=file_available,
        in_flight=in_flight,
    )
    assert decision is expected
