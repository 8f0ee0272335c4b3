from datetime import date
from pathlib import Path

import pytest

from export_engine.core.catalog import load_catalog
from export_engine.core.export_spec import ExportSpec
from export_engine.core.query import select_query
from export_engine.errors import CatalogError
from export_engine.settings import Settings


def test_shipped_catalog_loads():
    catalog = load_catalog(Settings.model_fields["catalog_path"].default)
    dataset = catalog.get("transactions")
    assert dataset.owner_column == "user_id"
    assert dataset.date_column == "txn_date"
    assert list(dataset.columns)[:3] == ["id", "user_id", "account_id"]


def test_unknown_dataset_lists_the_valid_names():
    catalog = load_catalog(Settings.model_fields["catalog_path"].default)
    with pytest.raises(CatalogError, match=r"unknown table_name 'pg_shadow'; valid names: .*transactions"):
        catalog.get("pg_shadow")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets: {}", "lists no datasets"),
        ("datasets:\n  t:\n    table: t\n    columns: {a: int}\n", "malformed"),
        (
            "datasets:\n  t:\n    table: t\n    date_column: d\n    owner_column: o\n    order_by: [a]\n"
            "    columns: {a: int, d: date}\n",
            "names column 'o'",
        ),
    ],
)
def test_bad_catalog_fails_loudly(tmp_path, text, message):
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError, match=message):
        load_catalog(path)


def test_query_parameters_carry_the_values():
    """The values travel as parameters; how they reach the server (quoted by psycopg2's mogrify) is
    checked against a real server in integration/test_sql_values.py."""
    catalog = load_catalog(Settings.model_fields["catalog_path"].default)
    spec = ExportSpec("transactions", date(2024, 1, 1), date(2024, 1, 31), owner="x'; DROP TABLE t; --")
    _, params = select_query(catalog.get("transactions"), spec)
    assert params == {
        "owner": "x'; DROP TABLE t; --",
        "date_from": date(2024, 1, 1),
        "date_to": date(2024, 1, 31),
    }


def test_the_catalog_is_parsed_once_per_version_of_its_file(tmp_path):
    shipped = Path(Settings.model_fields["catalog_path"].default).read_text()
    path = tmp_path / "catalog.yaml"
    path.write_text(shipped)

    first = load_catalog(path)
    assert load_catalog(path) is first  # every run reads it: one parse per process

    path.write_text(shipped.replace("transactions:", "payments:", 1))
    edited = load_catalog(path)
    assert edited is not first and "payments" in edited.names and "transactions" not in edited.names
