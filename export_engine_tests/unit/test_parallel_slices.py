"""How the parallel export splits a date range, and which exports it takes."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise

import pytest

from export_engine.core.catalog import Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.pipeline.parallel import can_split, date_slices

DATASET = Dataset(
    id="transactions",
    name="Transactions",
    description="",
    table="transactions",
    time_grain="daily",
    date_column="txn_date",
    owner_column="user_id",
    order_by=("txn_date", "id"),
    columns={"id": "bigint", "user_id": "text", "txn_date": "date"},
)
SPEC = ExportSpec("transactions", date(2024, 1, 1), date(2024, 12, 31), owner="u1")


@pytest.mark.parametrize(
    ("first", "last", "count"),
    [
        (date(2024, 1, 1), date(2024, 12, 31), 2),
        (date(2024, 1, 1), date(2024, 1, 3), 7),
        (date(2024, 2, 1), date(2024, 2, 29), 4),
    ],
)
def test_slices_are_contiguous_whole_days_covering_the_range(first, last, count):
    slices = date_slices(first, last, count)
    assert len(slices) == min(count, (last - first).days + 1)
    assert slices[0][0] == first and slices[-1][1] == last
    for (_, end), (start, _) in pairwise(slices):
        assert start == end + timedelta(days=1)
    lengths = [(b - a).days + 1 for a, b in slices]
    assert max(lengths) - min(lengths) <= 1


def test_only_plain_csv_ordered_by_a_date_column_splits():
    assert can_split(DATASET, SPEC)
    assert not can_split(DATASET, replace(SPEC, format="parquet"))
    assert not can_split(DATASET, replace(SPEC, compression="gzip"))
    assert not can_split(replace(DATASET, order_by=("id",)), SPEC)
    assert not can_split(replace(DATASET, columns={**DATASET.columns, "txn_date": "timestamptz"}), SPEC)
    assert not can_split(DATASET, replace(SPEC, date_to=SPEC.date_from))
