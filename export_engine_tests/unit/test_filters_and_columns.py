"""Filters, columns and formats: catalog checks, canonical form and dedup key, the SQL they become."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from api.schemas import DatasetView, ExportRequest
from export_engine.core.catalog import load_catalog
from export_engine.core.export_spec import ExportSpec, Filters
from export_engine.core.query import select_query
from export_engine.errors import CatalogError, ExportRequestError
from export_engine.runs.export_job import ExportConfig
from export_engine.runs.submission import run_config_for
from export_engine.settings import Settings

CATALOG = load_catalog(Settings.model_fields["catalog_path"].default)
TRANSACTIONS = CATALOG.get("transactions")
ALL_COLUMNS = (
    "id",
    "user_id",
    "account_id",
    "txn_date",
    "posted_at",
    "amount",
    "currency",
    "description",
    "counterparty",
    "category",
    "tag_ids",
    "status",
    "balance_after",
)


def spec(dataset_id: str = "transactions", **request) -> ExportSpec:
    return ExportSpec.for_dataset(
        CATALOG.get(dataset_id),
        owner="alice",
        date_from=date(2024, 1, 1),
        date_to=date(2024, 12, 31),
        **request,
    )


# -- catalog --------------------------------------------------------------------------------------


def test_shipped_catalog_has_the_five_datasets():
    assert CATALOG.names == ["accounts", "daily_spending_by_tag", "monthly_trends", "tags", "transactions"]
    grains = {name: CATALOG.get(name).time_grain for name in CATALOG.names}
    assert grains == {
        "transactions": "daily",
        "daily_spending_by_tag": "daily",
        "monthly_trends": "monthly",
        "accounts": "daily",
        "tags": "daily",
    }
    whole = {name for name in CATALOG.names if CATALOG.get(name).whole_history_in_packages}
    assert whole == {"accounts", "tags"}  # entities: a package takes them whole
    assert list(TRANSACTIONS.filters) == ["account_ids", "tag_ids", "status", "amount_min", "amount_max"]
    assert TRANSACTIONS.filters["status"].values == ("posted", "pending", "reversed")
    assert CATALOG.get("monthly_trends").filters == {}
    assert TRANSACTIONS.formats == ("csv", "parquet", "jsonl", "json", "xlsx", "pdf")  # statements
    for name in CATALOG.names:
        if name != "transactions":
            assert CATALOG.get(name).formats == ("csv", "parquet", "jsonl", "json", "xlsx")
        assert CATALOG.get(name).owner_column == "user_id"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    filters: {color: a}\n", "names unknown filter 'color'; known: account_ids, tag_ids"),
        ("    filters: {account_ids: nope}\n", "names column 'nope' it does not list"),
        ("    filters: {account_ids: o}\n", "filter 'account_ids' may not target the owner column"),
        (
            "    formats: [csv, docx]\n",
            "lists unknown formats ['docx']; known: csv, parquet, jsonl, json, xlsx, pdf",
        ),
    ],
)
def test_bad_filters_or_formats_fail_the_catalog_load(tmp_path, extra, message):
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "datasets:\n  t:\n    table: t\n    date_column: d\n    owner_column: o\n    order_by: [d]\n"
        "    columns: {o: text, d: date, a: text}\n" + extra
    )
    with pytest.raises(CatalogError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_catalog(path)


def test_dataset_view_lists_columns_filters_and_formats():
    view = DatasetView.from_dataset(TRANSACTIONS).model_dump()
    assert view["columns"][5] == {"name": "amount", "type": "numeric(14,2)"}
    assert view["filters"][1] == {"name": "tag_ids", "column": "tag_ids", "kind": "any_of", "values": None}
    assert view["formats"] == ["csv", "parquet", "jsonl", "json", "xlsx", "pdf"]
    assert view["compressions"] == {"gzip": ["csv", "jsonl", "json"]}


# -- the request, checked against the catalog -----------------------------------------------------


def test_default_columns_are_spelled_out():
    assert spec().columns == ALL_COLUMNS
    assert spec().dedup_key == spec(columns=list(ALL_COLUMNS)).dedup_key


@pytest.mark.parametrize(
    ("dataset_id", "request_", "message"),
    [
        (
            "transactions",
            {"columns": ["id", "secret"]},
            (
                "columns: unknown column 'secret' for dataset 'transactions'; valid columns: "
                "id, user_id, account_id, txn_date, posted_at, amount, currency, description, "
                "counterparty, category, tag_ids, status, balance_after"
            ),
        ),
        (
            "monthly_trends",
            {"columns": []},
            (
                "columns: the list is empty; omit it for every column, or pick from valid columns: "
                "user_id, month, currency, income, spending, net, txn_count"
            ),
        ),
        ("transactions", {"columns": ["id", "amount", "id"]}, "columns: 'id' is listed more than once"),
        (
            "monthly_trends",
            {"filters": Filters(account_ids=("acct-1",))},
            "filters: dataset 'monthly_trends' does not support the filter 'account_ids'; "
            "supported filters: none",
        ),
        (
            "daily_spending_by_tag",
            {"filters": Filters(status=("posted",))},
            (
                "filters: dataset 'daily_spending_by_tag' does not support the filter 'status'; "
                "supported filters: tag_ids, amount_min, amount_max"
            ),
        ),
        (
            "transactions",
            {"filters": Filters(status=("posted", "lost"))},
            "filters.status: unknown value 'lost'; valid values: posted, pending, reversed",
        ),
        (
            "transactions",
            {"filters": Filters(amount_min=Decimal(10), amount_max=Decimal("-5.5"))},
            "filters: amount_min (10) is greater than amount_max (-5.5)",
        ),
        (
            "transactions",
            {"format": "parquet", "compression": "gzip"},
            "compression: 'gzip' is only available with format 'csv', 'jsonl' or 'json', not 'parquet'",
        ),
    ],
)
def test_requests_the_catalog_does_not_allow_name_the_valid_choices(dataset_id, request_, message):
    with pytest.raises(ExportRequestError) as info:
        spec(dataset_id, **request_)
    assert str(info.value) == message


def test_a_format_the_dataset_does_not_offer_is_refused(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "datasets:\n  t:\n    table: t\n    date_column: d\n    owner_column: o\n    order_by: [d]\n"
        "    columns: {o: text, d: date}\n    formats: [csv, parquet]\n"
    )
    with pytest.raises(ExportRequestError) as info:
        ExportSpec.for_dataset(
            load_catalog(path).get("t"),
            owner="a",
            date_from=date(2024, 1, 1),
            date_to=date(2024, 1, 2),
            format="xlsx",
        )
    assert str(info.value) == "format: dataset 't' is not available as 'xlsx'; valid formats: csv, parquet"


# -- canonical form and dedup key -----------------------------------------------------------------


def test_id_list_order_and_repeats_do_not_change_the_key():
    first = spec(filters=Filters(account_ids=("b", "a"), tag_ids=("t2", "t1", "t2")))
    second = spec(filters=Filters(account_ids=("a", "b"), tag_ids=("t1", "t2")))
    assert first.dedup_key == second.dedup_key
    assert first.canonical()["filters"] == {"account_ids": ["a", "b"], "tag_ids": ["t1", "t2"]}


def test_equal_amounts_written_differently_are_one_key():
    assert (
        spec(filters=Filters(amount_min=Decimal("10.50"))).dedup_key
        == spec(filters=Filters(amount_min=Decimal("10.5"))).dedup_key
    )
    assert spec(filters=Filters(amount_max=Decimal("-0.00"))).canonical()["filters"] == {"amount_max": "0"}
    assert spec(filters=Filters(amount_min=Decimal("1E+2"))).canonical()["filters"] == {"amount_min": "100"}


@pytest.mark.parametrize(
    "change",
    [
        {"columns": ["id", "amount"]},
        {"filters": Filters(account_ids=("a",))},
        {"filters": Filters(tag_ids=("a",))},
        {"filters": Filters(status=("posted",))},
        {"filters": Filters(amount_min=Decimal(0))},
        {"filters": Filters(amount_max=Decimal(0))},
        {"compression": "gzip"},
        {"format": "xlsx"},
    ],
)
def test_every_parameter_that_changes_the_bytes_changes_the_key(change):
    assert spec(**change).dedup_key != spec().dedup_key


def test_column_order_is_part_of_the_key():
    assert spec(columns=["id", "amount"]).dedup_key != spec(columns=["amount", "id"]).dedup_key


def test_canonical_form_round_trips_through_the_export_row():
    original = spec(
        format="csv",
        compression="gzip",
        columns=["amount", "id"],
        filters=Filters(account_ids=("b", "a"), status=("posted",), amount_min=Decimal("-12.5")),
    )
    assert ExportSpec.from_canonical(original.canonical()) == original
    assert ExportSpec.from_canonical(original.canonical()).dedup_key == original.dedup_key


def test_the_run_config_carries_only_the_reference_id():
    """The op reads what to export from the row: edited run config cannot change what is exported."""
    config = run_config_for("ref-1")["ops"]["export_op"]["config"]
    assert config == {"reference_id": "ref-1"}
    assert ExportConfig(**config).reference_id == "ref-1"


def test_file_names_follow_the_output():
    assert spec(compression="gzip").download_filename == "transactions_2024-01-01_2024-12-31.csv.gz"
    assert (
        spec(format="parquet").object_key("ref", "run-7")
        == "exports/transactions/2024-01-01_2024-12-31/ref/run-7.parquet"
    )
    assert (
        spec("monthly_trends", format="xlsx").download_filename == "monthly_trends_2024-01-01_2024-12-31.xlsx"
    )


# -- the SQL --------------------------------------------------------------------------------------


def test_filters_are_bound_parameters_on_catalog_columns():
    filters = Filters(
        account_ids=("acct-1'; --",),
        tag_ids=("t1",),
        status=("posted",),
        amount_min=Decimal(-10),
        amount_max=Decimal("99.5"),
    )
    # The statement text the server receives is checked in integration/test_sql_values.py.
    _, params = select_query(TRANSACTIONS, spec(columns=["amount", "id"], filters=filters))
    assert params == {
        "owner": "alice",
        "date_from": date(2024, 1, 1),
        "date_to": date(2024, 12, 31),
        "filter_account_ids": ["acct-1'; --"],
        "filter_tag_ids": ["t1"],
        "filter_status": ["posted"],
        "filter_amount_min": Decimal(-10),
        "filter_amount_max": Decimal("99.5"),
    }


@pytest.mark.parametrize("dataset_id", ["transactions", "daily_spending_by_tag", "monthly_trends"])
def test_the_owner_condition_comes_first_in_every_query(dataset_id):
    dataset = CATALOG.get(dataset_id)
    select, params = select_query(
        dataset, spec(dataset_id, columns=[c for c in dataset.columns if c != "user_id"])
    )
    rendered = repr(select)
    where = rendered.index("WHERE")
    assert rendered.index("Identifier('user_id'), SQL(' = %(owner)s')") > where
    assert params["owner"] == "alice"


def test_a_filter_the_dataset_does_not_map_never_reaches_sql():
    raw = ExportSpec(
        "monthly_trends", date(2024, 1, 1), date(2024, 2, 1), owner="a", filters=Filters(account_ids=("x",))
    )
    with pytest.raises(
        CatalogError, match="dataset 'monthly_trends' does not support the filter 'account_ids'"
    ):
        select_query(CATALOG.get("monthly_trends"), raw)


# -- the API body ---------------------------------------------------------------------------------

BASE = {"table_name": "transactions", "date_from": "2024-01-01", "date_to": "2024-01-31"}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"filters": {"colour": ["red"]}},
            ("filters",),
            "unknown filter 'colour'; valid filters: account_ids, tag_ids, status, amount_min, amount_max",
        ),
        (
            {"filters": {"account_ids": []}},
            ("filters", "account_ids"),
            "must list at least one value; leave the filter out to keep every row",
        ),
        (
            {"filters": {"tag_ids": [""]}},
            ("filters", "tag_ids", 0),
            "String should have at least 1 character",
        ),
        ({"filters": {"amount_min": "NaN"}}, ("filters", "amount_min"), "Input should be a finite number"),
        ({"compression": "zip"}, ("compression",), "Input should be 'gzip'"),
        (
            {"format": "docx"},
            ("format",),
            "Input should be 'csv', 'parquet', 'jsonl', 'json', 'xlsx' or 'pdf'",
        ),
    ],
)
def test_malformed_bodies_are_refused_by_the_schema(change, field, message):
    with pytest.raises(ValidationError) as info:
        ExportRequest.model_validate({**BASE, **change})
    (error,) = info.value.errors()
    assert error["loc"] == field
    assert error["msg"].removeprefix("Value error, ") == message


def test_body_filters_become_canonical_filters():
    body = ExportRequest.model_validate(
        {**BASE, "filters": {"status": "posted", "account_ids": ["b", "a"], "amount_min": 10.5}}
    )
    assert body.filters.to_filters() == Filters(
        account_ids=("a", "b"), status=("posted",), amount_min=Decimal("10.5")
    )


def test_a_column_subset_or_a_filtered_export_is_named_apart_from_the_full_file():
    dataset = CATALOG.get("transactions")

    def named(**kwargs):
        return ExportSpec.for_dataset(
            dataset, owner="u", date_from=date(2024, 1, 1), date_to=date(2024, 12, 31), **kwargs
        )

    full = named()
    every_column = named(columns=list(dataset.columns))
    subset = named(columns=["txn_date", "amount"])
    other_subset = named(columns=["amount", "txn_date"])
    filtered = named(filters=Filters(status=("posted",)))
    both = named(columns=["txn_date", "amount"], filters=Filters(status=("posted",)))
    assert full.download_filename == every_column.download_filename
    assert full.download_filename == "transactions_2024-01-01_2024-12-31.csv"
    base = r"transactions_2024-01-01_2024-12-31"
    assert re.fullmatch(base + r"_columns_[0-9a-f]{8}\.csv", subset.download_filename)
    assert re.fullmatch(base + r"_filtered_[0-9a-f]{8}\.csv", filtered.download_filename)
    assert re.fullmatch(base + r"_columns-filtered_[0-9a-f]{8}\.csv", both.download_filename)
    assert subset.download_filename != other_subset.download_filename
    # the name survives the export row (the op reads its request there); the dedup key ignores the flag
    assert ExportSpec.from_canonical(subset.canonical()).download_filename == subset.download_filename
    assert ExportSpec.from_canonical(both.canonical()) == both
    assert full.dedup_key == every_column.dedup_key
    assert "column_subset" not in full.canonical()
