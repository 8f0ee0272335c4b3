"""What the web page needs from the API: filter values, progress, offline docs, the pages themselves."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_filter_values_are_the_callers_own(api):
    response = api.http.get(
        "/datasets/transactions/filter-values/account_ids", headers=api.headers("demo-user-70")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dataset"] == "transactions" and body["filter"] == "account_ids" and not body["truncated"]
    assert body["values"] and all(v.startswith("acct-70-") for v in body["values"])


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (
            "/datasets/transactions/filter-values/amount_min",
            422,
            "dataset 'transactions' has no list filter 'amount_min';"
            " list filters: account_ids, tag_ids, status",
        ),
        (
            "/datasets/monthly_trends/filter-values/account_ids",
            422,
            "dataset 'monthly_trends' has no list filter 'account_ids'; list filters: none",
        ),
        (
            "/datasets/pg_shadow/filter-values/account_ids",
            422,
            "unknown table_name 'pg_shadow'; valid names: ",
        ),
        ("/datasets/transactions/filter-values/account_ids?limit=0", 422, "limit: Input should be greater"),
    ],
)
def test_filter_values_refusals(api, path, status, message):
    response = api.http.get(path, headers=api.headers("demo-user-70"))
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith(message) or message in response.json()["detail"]


def test_filter_values_need_a_token(api):
    response = api.http.get("/datasets/transactions/filter-values/account_ids")
    assert response.status_code == 401
    assert response.json()["detail"] == "missing bearer token: send 'Authorization: Bearer <JWT>'"


@pytest.mark.parametrize(
    ("table_name", "filters", "field", "message"),
    [
        (
            "transactions",
            {"account_ids": ["acct-72-1", "nope", "acct-9-1"]},
            "filters.account_ids",
            "not among your accounts in transactions: acct-9-1, nope",
        ),
        (
            "transactions",
            {"tag_ids": ["tag-1", "tag-999"]},
            "filters.tag_ids",
            "not among your tags in transactions: tag-999",
        ),
        (
            "daily_spending_by_tag",
            {"tag_ids": ["tag-2", "TAG-2"]},
            "filters.tag_ids",
            "not among your tags in daily_spending_by_tag: TAG-2",
        ),
    ],
)
def test_ids_the_owner_does_not_have_are_422(api, table_name, filters, field, message):
    before = api.export_count()
    response = api.post(
        "demo-user-72", table_name=table_name, date_from="2023-01-01", date_to="2023-01-31", filters=filters
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"{field}: {message}"
    assert response.json()["errors"] == [{"field": field, "message": message}]
    assert api.export_count() == before


def test_the_owners_own_ids_are_accepted(api):
    response = api.post(
        "demo-user-72",
        table_name="transactions",
        date_from="2023-01-01",
        date_to="2023-01-31",
        filters={"account_ids": ["acct-72-1"], "tag_ids": ["tag-1"]},
    )
    assert response.status_code == 202, response.text
    api.wait("demo-user-72", response.json()["reference_id"])


def test_completed_export_reports_full_progress(api):
    created = api.post(
        "demo-user-70", table_name="transactions", date_from="2022-01-01", date_to="2022-01-31"
    )
    done = api.wait("demo-user-70", created.json()["reference_id"])
    assert done["status"] == "COMPLETED"
    view = api.get("demo-user-70", done["reference_id"]).json()
    assert view["progress"] == 100 and "rows_estimated" not in view


def test_a_reused_export_answers_with_a_signed_url(api):
    body = {"table_name": "transactions", "date_from": "2022-02-01", "date_to": "2022-02-28"}
    first = api.post("demo-user-71", **body)
    assert first.status_code == 202 and "download_url" not in first.json()
    api.wait("demo-user-71", first.json()["reference_id"])
    again = api.post("demo-user-71", **body)
    assert again.status_code == 200, again.text
    reused = again.json()
    assert reused["status"] == "COMPLETED" and reused["reused_from_ref"] == first.json()["reference_id"]
    download = httpx.get(reused["download_url"])
    assert download.status_code == 200 and download.content.startswith(b"id,user_id,account_id,")
    assert reused["expires_at"]


def test_date_order_error_names_date_to(api):
    response = api.post(
        "demo-user-70", table_name="transactions", date_from="2024-03-01", date_to="2024-01-31"
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "date_to", "message": "date_from (2024-03-01) is after date_to (2024-01-31)"}
    ]


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/analytics/datasets", b"<h1>Datasets</h1>"),
        ("/analytics/exports", b"<h1>My exports</h1>"),
        ("/analytics/static/datasets.js", b"Start Export"),
        ("/docs", b"/docs-assets/swagger-ui-bundle.js"),
        ("/redoc", b"/docs-assets/redoc.standalone.js"),
        ("/docs-assets/swagger-ui-bundle.js", b"SwaggerUIBundle"),
        ("/docs-assets/redoc.standalone.js", b"Redoc"),
    ],
)
def test_pages_and_assets_are_served_by_the_gateway(api, path, needle):
    response = api.http.get(path)
    assert response.status_code == 200, response.text
    assert needle in response.content
    assert b"cdn.jsdelivr.net" not in response.content


def test_pages_are_not_in_the_api_document(api):
    paths = api.http.get("/openapi.json").json()["paths"]
    assert "/datasets/{dataset_id}/filter-values/{filter_name}" in paths
    assert not [p for p in paths if p.startswith(("/analytics", "/docs", "/redoc"))]
