"""Dates a request leaves out: from the owner's first row to today in the business time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from api.errors import InvalidRequest, ServiceUnavailable
from api.schemas import ExportRequest
from api.services.date_range import with_default_dates
from api.source_lookups import SourceLookupFailed
from export_engine.core.catalog import load_catalog

CATALOG = load_catalog(Path(__file__).parents[2] / "export_engine" / "catalog.yaml")
# 2026-12-03 11:30 UTC is already 2026-12-04 in Auckland.
NOW = datetime(2026, 12, 3, 11, 30, tzinfo=UTC)


class FirstRow:
    """The one look-up the resolver makes, answering a fixed first day (or failing)."""

    def __init__(self, first: date | None = None, fails: bool = False) -> None:
        self.first, self.fails, self.asked = first, fails, []

    def first_date(self, datasets, *, owner):
        self.asked.extend((dataset.id, owner) for dataset in datasets)
        if self.fails:
            raise SourceLookupFailed("OperationalError: connection refused")
        return self.first


def _resolve(lookups: FirstRow, timezone: str = "UTC", **body) -> ExportRequest:
    request = ExportRequest.model_validate({"table_name": "transactions", **body})
    return with_default_dates(
        request, owner="alice", catalog=CATALOG, lookups=lookups, timezone=timezone, clock=lambda: NOW
    )


def test_both_dates_given_asks_nothing():
    lookups = FirstRow(date(2019, 1, 1))
    resolved = _resolve(lookups, date_from="2024-01-01", date_to="2024-01-31")
    assert (resolved.date_from, resolved.date_to) == (date(2024, 1, 1), date(2024, 1, 31))
    assert lookups.asked == []


@pytest.mark.parametrize(
    ("timezone", "today"), [("UTC", date(2026, 12, 3)), ("Pacific/Auckland", date(2026, 12, 4))]
)
def test_no_dates_is_the_first_row_to_today_in_the_business_time_zone(timezone, today):
    lookups = FirstRow(date(2019, 1, 7))
    resolved = _resolve(lookups, timezone=timezone)
    assert (resolved.date_from, resolved.date_to) == (date(2019, 1, 7), today)
    assert lookups.asked == [("transactions", "alice")]


def test_only_date_to_missing_needs_no_look_up():
    lookups = FirstRow(date(2019, 1, 7))
    resolved = _resolve(lookups, date_from="2026-11-01")
    assert (resolved.date_from, resolved.date_to) == (date(2026, 11, 1), date(2026, 12, 3))
    assert lookups.asked == []


def test_an_owner_without_rows_gets_today_and_an_end_before_the_first_row_an_empty_day():
    assert (_resolve(FirstRow(None)).date_from, _resolve(FirstRow(None)).date_to) == (NOW.date(), NOW.date())
    resolved = _resolve(FirstRow(date(2019, 1, 7)), date_to="2018-12-31")
    assert (resolved.date_from, resolved.date_to) == (date(2018, 12, 31), date(2018, 12, 31))


def test_a_start_after_today_is_refused_on_date_from():
    with pytest.raises(InvalidRequest) as refused:
        _resolve(FirstRow(), date_from="2027-01-01")
    assert refused.value.field_errors() == [
        {"field": "date_from", "message": "2027-01-01 is after date_to (today, 2026-12-03)"}
    ]


def test_an_unanswered_look_up_is_a_503_that_says_how_to_avoid_it():
    with pytest.raises(ServiceUnavailable, match="retry later or give date_from"):
        _resolve(FirstRow(fails=True))


def test_an_unknown_dataset_is_left_to_the_export_service():
    request = ExportRequest.model_validate({"table_name": "nope"})
    assert (
        with_default_dates(
            request, owner="a", catalog=CATALOG, lookups=FirstRow(), timezone="UTC", clock=lambda: NOW
        )
        is request
    )
