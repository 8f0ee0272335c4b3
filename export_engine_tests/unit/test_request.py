import hashlib
import json
from datetime import date

import pytest

from export_engine.core.export_spec import ExportSpec, Filters


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


def _documented_key(s: ExportSpec) -> str:
    """The README's formula: SHA-256 of `table|from|to|owner|<every other parameter as sorted JSON>`."""
    c = s.canonical()
    rest = {k: v for k, v in c.items() if k not in ("table_name", "date_from", "date_to", "owner")}
    head = f"{c['table_name']}|{c['date_from']}|{c['date_to']}|{c['owner']}"
    return hashlib.sha256(
        f"{head}|{json.dumps(rest, sort_keys=True, separators=(',', ':'))}".encode()
    ).hexdigest()


def _naive_key(s: ExportSpec) -> str:
    """What a key of '|'-joined values would be: the separator could then move between fields."""
    c = s.canonical()
    values = [c["table_name"], c["date_from"], c["date_to"], c["owner"], *c["filters"].get("account_ids", [])]
    return hashlib.sha256("|".join(values).encode()).hexdigest()


def test_key_separator_cannot_be_forged_by_the_owner():
    # The same characters split differently: "alice|x" as the owner, or owner "alice" + account "x".
    shifted = spec(owner="alice|x")
    honest = spec(owner="alice", filters=Filters(account_ids=("x",)))
    assert _naive_key(shifted) == _naive_key(honest)  # a separator-shifting pair for a naive key
    assert shifted.dedup_key != honest.dedup_key
    # The owner may hold the separator and JSON: the tail stays unambiguous because it is JSON.
    tail = json.dumps({"columns": [], "compression": None, "filters": {}, "format": "csv"})
    hostile = spec(owner=f'alice|{tail}|"\\')
    for s in (shifted, honest, hostile):
        assert s.dedup_key == _documented_key(s)
    assert len({shifted.dedup_key, honest.dedup_key, hostile.dedup_key, spec().dedup_key}) == 4


def test_object_key_and_download_name():
    assert spec().object_key("ref-1", "run-1") == "exports/transactions/2024-01-01_2024-12-31/ref-1/run-1.csv"
    assert spec().object_prefix("ref-1") == "exports/transactions/2024-01-01_2024-12-31/ref-1/"
    assert spec().download_filename == "transactions_2024-01-01_2024-12-31.csv"
