"""The progress percentage of `GET /export/{id}` and the pick-list search pattern (pure functions)."""

from __future__ import annotations

import pytest

from api.source_lookups import RowEstimate, _like_pattern, progress_percent


@pytest.mark.parametrize(
    ("status", "rows_written", "estimate", "expected"),
    [
        ("PENDING", None, None, 0),
        ("RUNNING", 250, RowEstimate(1000, exact=True), 25),
        ("RUNNING", 0, RowEstimate(1000, exact=True), 0),
        ("RUNNING", 1000, RowEstimate(1000, exact=True), 99),  # never 100 before the file exists
        ("RUNNING", 5000, RowEstimate(1000, exact=False), 99),  # a low planner estimate does not overflow
        ("RUNNING", 10, RowEstimate(0, exact=False), 99),
        ("RUNNING", 10, None, None),  # no total: no percentage rather than a made-up one
        ("COMPLETED", None, None, 100),
        ("FAILED", 10, RowEstimate(100, exact=True), None),
        ("CANCELED", 10, None, None),
    ],
)
def test_progress_percent(status, rows_written, estimate, expected):
    assert progress_percent(status=status, rows_written=rows_written, estimate=estimate) == expected


@pytest.mark.parametrize(
    ("search", "pattern"),
    [("", "%%"), ("acct-1", "%acct-1%"), ("100%", "%100\\%%"), ("a_b", "%a\\_b%"), ("a\\b", "%a\\\\b%")],
)
def test_search_is_a_literal_substring(search, pattern):
    assert _like_pattern(search) == pattern
