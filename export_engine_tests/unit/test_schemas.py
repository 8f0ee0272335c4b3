from datetime import date

import pytest
from pydantic import ValidationError

from api.schemas import ExportRequest

BASE = {"table_name": "transactions", "date_from": "2024-01-01", "date_to": "2024-01-31"}


def test_defaults():
    request = ExportRequest.model_validate(BASE)
    assert (request.date_from, request.force_refresh, request.format) == (date(2024, 1, 1), False, "csv")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"date_from": "2024-02-30"}, "'2024-02-30' is not a real calendar date"),
        ({"date_from": "01/02/2024"}, "must be a date written as YYYY-MM-DD"),
        ({"date_from": 1704067200}, "must be a date written as YYYY-MM-DD"),
        ({"date_to": "2024-01-01T10:00:00"}, "must be a date written as YYYY-MM-DD"),
        ({"date_from": "2024-03-01"}, "date_from (2024-03-01) is after date_to (2024-01-31)"),
        ({"format": "exe"}, "Input should be 'csv'"),
        ({"force_refresh": "yes"}, "valid boolean"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"table_name": ""}, "at least 1 character"),
    ],
)
def test_invalid_requests(change, message):
    with pytest.raises(ValidationError) as info:
        ExportRequest.model_validate({**BASE, **change})
    assert message in str(info.value)


def test_a_package_range_is_checked_by_the_same_rule():
    from api.package_schemas import PackageRequest

    with pytest.raises(ValidationError) as info:
        PackageRequest.model_validate({"date_from": "2024-03-01", "date_to": "2024-01-31"})
    assert "date_from (2024-03-01) is after date_to (2024-01-31)" in str(info.value)
    assert info.value.errors()[0]["loc"] == ("date_to",)
