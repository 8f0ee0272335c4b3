from datetime import date

import pytest

from export_engine.request import ExportSpec


def spec(**overrides):
    base = dict(
        table_name="transactions", date_from=date(2024, 1, 1), date_to=date(2024, 12, 31), owner="alice"
    )
    return ExportSpec(**{**base, **overrides})


def test_key_is_stable_and_hex_sha256():
    assert spec().dedup_key == spec().dedup_key
    assert len(spec().dedup_key) == 64
    int(spec().dedup_key, 16)


def test_key_round_trips_through_canonical_form():
    original = spec(format="csv")
    assert ExportSpec.from_canonical(original.canonical()) == original
    assert ExportSpec.from_canonical(original.canonical()).dedup_key == original.dedup_key


def test_default_format_is_spelled_out():
    assert spec().dedup_key == spec(format="csv").dedup_key


@pytest.mark.parametrize(
    "change",
    [
        {"owner": "bob"},
        {"table_name": "other"},
        {"date_from": date(2024, 1, 2)},
        {"date_to": date(2024, 12, 30)},
        {"format": "parquet"},
    ],
)
def test_every_parameter_that_changes_the_file_changes_the_key(change):
    assert spec(**change).dedup_key != spec().dedup_key


def test_key_separator_cannot_be_forged_by_the_owner():
    # "a|b" as owner must not collide with another split of the same characters
    assert spec(owner="alice|x").dedup_key != spec(owner="alice").dedup_key


def test_object_key_and_download_name():
    assert spec().object_key("ref-1", "run-1") == "exports/transactions/2024-01-01_2024-12-31/ref-1/run-1.csv"
    assert spec().object_prefix("ref-1") == "exports/transactions/2024-01-01_2024-12-31/ref-1/"
    assert spec().download_filename == "transactions_2024-01-01_2024-12-31.csv"
