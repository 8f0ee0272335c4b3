"""The package request: validation against the catalog, canonical form and dedup key (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from export_engine.core.catalog import load_catalog
from export_engine.core.export_spec import ExportSpec
from export_engine.core.package_spec import PackageSpec, stored_spec
from export_engine.errors import ExportRequestError
from export_engine.runs.submission import job_name_for, run_config_for, run_tags_for
from export_engine.settings import Settings

CATALOG = load_catalog(Settings.model_fields["catalog_path"].default, default_max_span_days=3660)
ALL = ["accounts", "daily_spending_by_tag", "monthly_trends", "tags", "transactions"]


def _spec(**changes) -> PackageSpec:
    args = dict(owner="u1", datasets=None, date_from=date(2024, 1, 1), date_to=date(2024, 12, 31))
    return PackageSpec.for_request(CATALOG, **{**args, **changes})


def test_default_is_every_dataset_that_takes_the_format():
    assert list(_spec().datasets) == ALL
    assert list(_spec(format="parquet").datasets) == ALL


def test_dataset_order_and_duplicates():
    assert _spec(datasets=["transactions", "accounts"]).datasets == ("accounts", "transactions")
    assert (
        _spec(datasets=["transactions", "accounts"]).dedup_key
        == _spec(datasets=["accounts", "transactions"]).dedup_key
    )
    with pytest.raises(ExportRequestError, match=r"^datasets: 'tags' is listed more than once$"):
        _spec(datasets=["tags", "tags"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"datasets": []},
            r"^datasets: the list is empty; omit it for every dataset, or pick from accounts, ",
        ),
        ({"datasets": ["nope"]}, r"^datasets: unknown dataset 'nope'; valid names: accounts, daily_spending"),
        ({"format": "xlsx"}, r"^format: a package is written as csv, jsonl, parquet; not 'xlsx'$"),
        ({"date_from": date(2025, 1, 1)}, r"^date_to: date_from \(2025-01-01\) is after date_to"),
    ],
)
def test_refusals_name_the_valid_choices(changes, message):
    with pytest.raises(ExportRequestError, match=message):
        _spec(**changes)


def test_key_differs_by_every_parameter_and_from_any_export():
    base = _spec(datasets=["transactions"])
    keys = {
        base.dedup_key,
        _spec(datasets=["transactions"], owner="u2").dedup_key,
        _spec(datasets=["transactions"], format="jsonl").dedup_key,
        _spec(datasets=["transactions"], date_from=date(2024, 2, 1)).dedup_key,
        _spec(datasets=["transactions", "tags"]).dedup_key,
    }
    assert len(keys) == 5
    export = ExportSpec.for_dataset(
        CATALOG.get("transactions"), owner="u1", date_from=date(2024, 1, 1), date_to=date(2024, 12, 31)
    )
    assert export.dedup_key != base.dedup_key


def test_entries_are_the_single_exports_with_entities_whole():
    spec = _spec(datasets=["accounts", "transactions"], date_from=date(1950, 1, 1))  # > max_span_days
    (_, accounts_spec), (transactions, transactions_spec) = spec.entries(CATALOG)
    assert (accounts_spec.date_from, accounts_spec.date_to) == (date(1900, 1, 1), date(2024, 12, 31))
    assert transactions_spec == ExportSpec(
        "transactions",
        date(1950, 1, 1),
        date(2024, 12, 31),
        owner="u1",
        columns=tuple(transactions.columns),
    )
    assert spec.entry_path(transactions_spec) == "transactions.csv"


def test_stored_round_trip_and_run_submission():
    spec = _spec(datasets=["tags"], format="parquet")
    assert stored_spec(spec.canonical()) == spec
    export = ExportSpec.for_dataset(
        CATALOG.get("tags"), owner="u1", date_from=date(2024, 1, 1), date_to=date(2024, 1, 2)
    )
    assert stored_spec(export.canonical()) == export
    assert job_name_for(spec.kind) == "package_job" and job_name_for(export.kind) == "export_job"
    assert run_config_for("r1", "package") == {"ops": {"package_op": {"config": {"reference_id": "r1"}}}}
    assert run_tags_for("r1", spec)["table_name"] == "package"
    assert spec.object_key("r1", "run1") == "exports/package/2024-01-01_2024-12-31/r1/run1.zip"
    assert spec.download_filename == "package_2024-01-01_2024-12-31_parquet.zip"
