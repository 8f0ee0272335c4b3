from datetime import date

import pytest

from export_engine.dedup import Decision, decide

TODAY = date(2026, 6, 15)  # a frozen clock: the rule takes "today" as an argument


@pytest.mark.parametrize(
    ("force_refresh", "date_to", "file_available", "in_flight", "expected"),
    [
        (True, date(2025, 1, 1), True, True, Decision.NEW),  # force_refresh wins over everything
        (False, TODAY, True, True, Decision.NEW),  # a range reaching today may still change
        (False, date(2026, 6, 16), True, False, Decision.NEW),  # ... or the future
        (False, date(2026, 6, 14), True, True, Decision.REUSE),  # yesterday is final: reuse the file
        (False, date(2026, 6, 14), False, True, Decision.ATTACH),  # no file yet, one in flight: attach
        (False, date(2026, 6, 14), False, False, Decision.NEW),  # nothing to reuse or attach
    ],
)
def test_rules_in_order(force_refresh, date_to, file_available, in_flight, expected):
    assert (
        decide(
            force_refresh=force_refresh,
            date_to=date_to,
            today=TODAY,
            file_available=file_available,
            in_flight=in_flight,
        )
        is expected
    )
