"""PDF statements against an in-memory source, read back as a person reads them: text extracted with an
independent reader (pypdf), the numbers parsed from that text, the glyphs from the embedded fonts."""

from __future__ import annotations

import io
import re
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
from export_engine_tests.pdf_reading import assert_reconciles, embedded_glyphs, parse_sections

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
PARAMS = {
    "owner": "demo-user-7",
    "date_from": date(2024, 1, 1),
    "date_to": date(2024, 3, 31),
    "export_reference": "ref-0042",
}
GENERATED = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
HOSTILE = ("Café au lait ☕", 'Refund, "partial"', "Standing order\nmonthly", "Rent 🏠 Zoë")


def _rows(count: int, account: str = "acct-7-1", currency: str = "EUR", first_id: int = 0) -> list[dict]:
    rows, balance = [], Decimal("1000.00")
    for n in range(count):
        amount = Decimal(-(n % 97) * 131 - 7) / 100 if n % 5 else Decimal(250000 + n) / 100
        balance += amount
        rows.append(
            {
                "id": first_id + n,
                "account_id": account,
                "txn_date": date(2024, 1 + n * 3 // max(count, 1), 1 + n % 28),
                "amount": amount,
                "currency": currency,
                "description": HOSTILE[n % len(HOSTILE)] if n % 3 == 0 else f"Card payment {n}",
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


def _statement(rows: list[dict], **params: Any) -> tuple[bytes, list[str]]:
    sink = io.BytesIO()
    assert write_pdf(_Source(rows, batch=70), None, {**PARAMS, **params}, sink, generated=GENERATED) == len(
        rows
    )
    body = sink.getvalue()
    return body, [page.extract_text() for page in PdfReader(io.BytesIO(body)).pages]


def test_a_statement_of_one_account_reconciles_and_numbers_every_page():
    rows = _rows(300)
    _, pages = _statement(rows)
    assert len(pages) > 3
    for n, page in enumerate(pages, start=1):
        assert f"Page {n} of {len(pages)}" in page
        assert "Account statement · demo-user-7" in page and "Period 2024-01-01 to 2024-03-31" in page
        assert "Generated 2026-12-03 09:30 UTC · Reference ref-0042" in page
        if n > 1:  # a section that crosses a page says whose rows these are, and repeats the header
            assert "acct-7-1 · EUR · 2024-01-01 to 2024-03-31 (continued)" in page
            assert "Date Description Counterparty Category Amount Balance" in page
    assert "Summary" not in pages[0]  # one section: no summary table
    sections = parse_sections(pages)
    assert list(sections) == ["acct-7-1 EUR"]
    assert_reconciles(sections["acct-7-1 EUR"])
    assert sections["acct-7-1 EUR"]["balances"] == [r["balance_after"] for r in rows]
    assert sections["acct-7-1 EUR"]["opening"] == Decimal("1000.00")


def test_several_accounts_and_currencies_get_a_summary_and_one_reconciled_section_each():
    rows = (
        _rows(40, "acct-7-2", "USD", first_id=1000)
        + _rows(30, "acct-7-1", "EUR")
        + _rows(20, "acct-7-1", "GBP", first_id=2000)
    )
    _, pages = _statement(rows)
    sections = parse_sections(pages)
    assert list(sections) == ["acct-7-1 EUR", "acct-7-1 GBP", "acct-7-2 USD"]
    for key, section in sections.items():
        assert_reconciles(section)
        closing = f"{section['closing']:,.2f} {section['currency']}"
        account, currency = key.split()
        count = len(section["amounts"])
        assert re.search(rf"{account} {currency} {count} 1,000.00 {currency} .* {closing}", pages[0]), key
    assert "Summary\nAccount Currency Rows Opening Money in Money out Closing" in pages[0]


def test_every_character_of_the_hostile_descriptions_prints_with_a_real_glyph():
    body, pages = _statement(_rows(24))
    text = "\n".join(pages)
    for description in HOSTILE:
        assert " ".join(description.split()) in text  # a newline stays on the row, as a space
    assert "=" not in text  # the old statement printed ☕ as '='
    glyphs = embedded_glyphs(body)
    for char in set("".join(HOSTILE)) - set(" \n"):
        fonts = [name for name, chars in glyphs.items() if char in chars]
        assert fonts, f"{char!r} ({ord(char):#x}) has no glyph in any embedded font"
    assert any("Symbola" in name for name in glyphs if "🏠" in glyphs[name])  # DejaVu lacks it: fallback


@pytest.mark.parametrize(("size", "points"), [(None, (595.28, 841.89)), ("A4", (595.28, 841.89)),
                                              ("Letter", (612.0, 792.0))])  # fmt: skip
def test_a4_by_default_and_letter_on_request(size, points):
    body, pages = _statement(_rows(120), **({"page_size": size} if size else {}))
    for page in PdfReader(io.BytesIO(body)).pages:
        assert (round(float(page.mediabox.width), 2), round(float(page.mediabox.height), 2)) == points
    assert_reconciles(parse_sections(pages)["acct-7-1 EUR"])


def test_an_unknown_page_size_is_refused():
    with pytest.raises(ExportPermanentError, match="pdf page size 'A5'; valid: A4, Letter"):
        _statement(_rows(3), page_size="A5")


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (
            lambda rows: rows[7].update(balance_after=rows[7]["balance_after"] + Decimal("0.01")),
            "account acct-7-1 (EUR), transaction 7 on 2024-01-08: the balance before it is 5,978.74 EUR "
            "and its amount -9.24 EUR, so its balance must be 5,969.50 EUR, not 5,969.51 EUR",
        ),
        (  # a missing row: the next one does not follow from the one before
            lambda rows: rows.pop(4),
            "transaction 5 on 2024-01-06: the balance before it is 3,491.93 EUR and its amount 2,500.05 EUR, "
            "so its balance must be 5,991.98 EUR, not 5,986.67 EUR",
        ),
        (
            lambda rows: rows[2].update(balance_after=None),
            "transaction 2 on 2024-01-03: it has no balance_after",
        ),
    ],
)
def test_a_statement_that_does_not_reconcile_is_refused_before_any_byte(tamper, reason):
    rows = _rows(30)
    tamper(rows)
    sink = io.BytesIO()
    with pytest.raises(ExportPermanentError) as refused:
        write_pdf(_Source(rows), None, PARAMS, sink)
    assert str(refused.value).startswith("the statement does not reconcile, so it was not printed: ")
    assert reason in str(refused.value)
    assert sink.getvalue() == b""


def test_an_empty_statement_says_so():
    sink = io.BytesIO()
    assert write_pdf(_Source([]), None, PARAMS, sink) == 0
    page = PdfReader(io.BytesIO(sink.getvalue())).pages[0].extract_text()
    assert "No transactions in this period." in page and "Page 1 of 1" in page


def test_more_rows_than_a_statement_holds_is_refused_before_any_byte():
    class _Big(_Source):
        @contextmanager
        def arrow_batches(self, select: Any, params: dict[str, Any], *, count: bool = False):
            yield ArrowRows(pa.RecordBatchReader.from_batches(SCHEMA, iter(())), PDF_MAX_ROWS + 1)

    sink = io.BytesIO()
    with pytest.raises(ExportPermanentError, match="at most 10,000 rows; this export has 10,001"):
        write_pdf(_Big([]), None, PARAMS, sink)
    assert sink.getvalue() == b""
