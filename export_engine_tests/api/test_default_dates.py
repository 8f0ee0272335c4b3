"""A request that leaves `date_from` out needs the owner's first row: when the source database cannot
say, the answer is a 503 that says how to avoid the look-up, and nothing is submitted."""

from __future__ import annotations

import pytest

from export_engine_tests.api.conftest import auth

UNKNOWN_START = (
    "could not find where your data starts (the source database did not answer); "
    "retry later or give date_from"
)


@pytest.mark.parametrize("path", ["/export", "/export/stream"])
def test_no_start_and_no_source_is_a_503_naming_the_way_out(make_client, launcher, path):
    client = make_client()
    response = client.post(path, json={"table_name": "transactions", "date_to": "2024-01-31"}, headers=auth())
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": UNKNOWN_START, "errors": []}
    assert launcher.submitted == []
