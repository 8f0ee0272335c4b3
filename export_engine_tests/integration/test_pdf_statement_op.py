"""A PDF statement through the export op (`export_job` in-process, real export DB, S3 and source): the
footer names the export's reference id, the paper size is the setting's, and a statement whose balances
do not add up is a FAILED export with the reason, with no file."""

from __future__ import annotations

from datetime import date

import psycopg2
import pytest

from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Export
from export_engine.db.session import session_factory
from export_engine.lifecycle import creation
from export_engine.runs.export_job import export_job
from export_engine.runs.resources import ExportDbResource, S3StorageResource, SourceDatabaseResource
from export_engine.runs.submission import run_config_for
from export_engine.settings import get_settings
from export_engine_tests.pdf_reading import assert_reconciles, page_texts, parse_sections

pytestmark = pytest.mark.integration

Q1 = (date(2024, 1, 1), date(2024, 3, 31))
BROKEN_OWNER = "statement-owner-broken"


def _run(settings, spec: ExportSpec) -> Export:
    sessions = session_factory(settings.database_url)
    with sessions.begin() as session:
        reference_id = creation.create_pending(session, spec).reference_id
    export_job.execute_in_process(
        run_config=run_config_for(reference_id, "export"),
        resources={
            "export_db": ExportDbResource.from_settings(settings),
            "source_db": SourceDatabaseResource.from_settings(settings),
            "storage": S3StorageResource.from_settings(settings),
        },
        raise_on_error=False,
    )
    with sessions() as session:
        row = session.get(Export, reference_id)
        assert row is not None
        return row


def test_the_op_prints_the_reference_id_on_every_page_on_the_configured_paper(
    settings, storage, op_settings, monkeypatch
):
    monkeypatch.setenv("PDF_PAGE_SIZE", "Letter")
    get_settings.cache_clear()
    row = _run(settings, ExportSpec("transactions", *Q1, owner="demo-user-23", format="pdf"))
    assert (row.status, row.error) == ("COMPLETED", None)
    body = storage.client.get_object(Bucket=storage.bucket, Key=row.s3_key)["Body"].read()
    pages = page_texts(body)
    for n, page in enumerate(pages, start=1):
        assert f"Reference {row.reference_id}" in page and f"Page {n} of {len(pages)}" in page
    sections = parse_sections(pages)
    assert len(sections) == 3  # the owner's three accounts
    for section in sections.values():
        assert_reconciles(section)
    assert b"/MediaBox [0 0 612.00 792.00]" in body  # Letter, in points


@pytest.fixture
def broken_rows(stack):
    """Two rows of an owner of their own whose second balance is off by a cent."""
    rows = [
        (990_000_001, "2024-01-10", "-10.00", "90.00"),
        (990_000_002, "2024-01-11", "-5.00", "85.01"),
    ]
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        for id_, day, amount, balance in rows:
            cur.execute(
                "INSERT INTO transactions (id, user_id, account_id, txn_date, amount, currency, description,"
                " status, balance_after) VALUES (%s, %s, 'acct-broken-1', %s, %s, 'EUR', 'Card payment',"
                " 'posted', %s)",
                (id_, BROKEN_OWNER, day, amount, balance),
            )
    yield
    with psycopg2.connect(stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM transactions WHERE user_id = %s", (BROKEN_OWNER,))


def test_a_statement_that_does_not_reconcile_is_a_failed_export_with_the_reason(
    settings, storage, op_settings, broken_rows
):
    spec = ExportSpec("transactions", *Q1, owner=BROKEN_OWNER, format="pdf")
    row = _run(settings, spec)
    assert row.status == "FAILED"
    assert row.error == (
        "ExportPermanentError: the statement does not reconcile, so it was not printed: "
        "account acct-broken-1 (EUR), "
        "transaction 990000002 on 2024-01-11: the balance before it is 90.00 EUR and its amount "
        "-5.00 EUR, so its balance must be 85.00 EUR, not 85.01 EUR"
    )
    assert row.attempts == 1  # permanent: not retried
    assert row.s3_key is None
    assert storage.pending_uploads(prefix=spec.object_prefix(row.reference_id)) == []
