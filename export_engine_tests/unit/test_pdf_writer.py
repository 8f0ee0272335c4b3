"""PDF statements against an in-memory source, read back with an independent reader (pypdf)."""

from __future__ import annotations

import io
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pypdf import PdfReader

from export_engine.core.formats import PDF_MAX_ROWS
from export_engine.errors import ExportPermanentError
from export_engine.streaming.rows import ArrowRows
from export_engine.writers import write_pdf

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("account_id", pa.string()),
        pa.field("txn_date", pa.date32()),
        pa.field("amount", pa.decimal128(14, 2)),
        pa.field("currency", pa.string()),
        pa.field("description", pa.string()),
        pa.field("counterparty", pa.string()),
        pa.field("category", pa.string()),
        pa.field("balance_after", pa.decimal128(14, 2)),
    ]
)
PARAMS = {"owner": "demo-user-7", "date_from": date(2024, 1, 1), "date_to": date(2024, 3, 31)}


def _rows(count: int, account: str = "acct-7-1") -> list[dict[str, Any]]:
    rows, balance = [], Decimal("1000.00")
    for n in range(count):
        amount = Decimal(-(n % 97) * 131 - 7) / 100 if n % 5 else Decimal(250000 + n) / 100
        balance += amount
        rows.append(
            {
                "id": n,
                "account_id": account,
                "txn_date": date(2024, 1, 1 + n % 28),
                "amount": amount,
                "currency": "EUR",
                "description": "Café au lait ☕" if n % 3 == 0 else f"Card payment {n}",
                "counterparty": "Grocer & Sons",
                "category": "dining",
                "balance_after": balance,
            }
        )
    return rows


class _Source:
    def __init__(self, rows: list[dict[str, Any]], batch: int = 1000) -> None:
        self.rows, self.batch = rows, batch

    @contextmanager
    def arrow_batches(self, select: Any, params: dict[str, Any], *, count: bool = False):
        table = pa.Table.from_pylist(self.rows, schema=SCHEMA)
        yield ArrowRows(
            pa.RecordBatchReader.from_batches(SCHEMA, table.to_batches(self.batch)),
            len(self.rows) if count else None,
        )


def _text(body: bytes) -> tuple[list[str], PdfReader]:
    reader = PdfReader(io.BytesIO(body))
    return [page.extract_text() for page in reader.pages], reader


def test_a_statement_lists_every_row_with_totals_balances_and_page_numbers():
    rows = _rows(300)
    sink = io.BytesIO()
    generated = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    assert write_pdf(_Source(rows, batch=70), None, PARAMS, sink, generated=generated) == 300
    pages, _ = _text(sink.getvalue())
    assert len(pages) > 3
    for n, page in enumerate(pages, start=1):
        assert f"Page {n} of {len(pages)}" in page
        if "2024-01-" in page:  # the header repeats on every page of the table
            assert "Date Description Counterparty Category Amount Balance" in page
    text = "\n".join(pages)
    assert "Account statement" in text and "demo-user-7" in text and "2024-01-01 to 2024-03-31" in text
    assert "Generated 2026-12-03 09:30 UTC" in text.replace("Generated\n", "Generated ")
    assert "Café au lait ☕" in text
    for row in rows:  # every amount and balance, exactly, with two decimals and separators
        assert f"{row['amount']:,.2f}" in text and f"{row['balance_after']:,.2f}" in text
    debits = sum(r["amount"] for r in rows if r["amount"] < 0)
    credits = sum(r["amount"] for r in rows if r["amount"] >= 0)
    summary = pages[-1]
    assert f"{debits:,.2f}" in summary and f"{credits:,.2f}" in summary
    assert f"{debits + credits:,.2f}" in summary and "300" in summary
    opening = rows[0]["balance_after"] - rows[0]["amount"]
    assert f"Opening balance {opening:,.2f}" in summary.replace("\n", " ")
    assert f"Closing balance {rows[-1]['balance_after']:,.2f}" in summary.replace("\n", " ")


def test_several_accounts_get_totals_but_no_single_balance():
    rows = _rows(3, "acct-1") + _rows(2, "acct-2")
    sink = io.BytesIO()
    write_pdf(_Source(rows), None, PARAMS, sink)
    text = "\n".join(_text(sink.getvalue())[0])
    assert "Opening balance" not in text and "one account in one currency" in text


def test_an_empty_statement_says_so():
    sink = io.BytesIO()
    assert write_pdf(_Source([]), None, PARAMS, sink) == 0
    assert "No transactions in this period." in _text(sink.getvalue())[0][0]


def test_more_rows_than_a_statement_holds_is_refused_before_any_byte():
    class _Big(_Source):
        @contextmanager
        def arrow_batches(self, select: Any, params: dict[str, Any], *, count: bool = False):
            yield ArrowRows(pa.RecordBatchReader.from_batches(SCHEMA, iter(())), PDF_MAX_ROWS + 1)

    sink = io.BytesIO()
    with pytest.raises(ExportPermanentError, match="at most 10,000 rows; this export has 10,001"):
        write_pdf(_Big([]), None, PARAMS, sink)
    assert sink.getvalue() == b""
