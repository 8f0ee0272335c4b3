"""PDF bank statements through fpdf2, for the transactions dataset, at most `PDF_MAX_ROWS` rows.

A statement a person prints and shows to a landlord or a tax office: one section per (account,
currency), each with its opening balance, its rows with the account's running balance, its closing
balance and totals in / out / net, and a summary of the sections first when there are several
(pdf_tables.py); every amount carries its currency. The sections are reconciled before anything is
drawn (pdf_sections.py): a statement whose balances do not add up is an `ExportPermanentError`
naming the transaction, never a printed file. Owner and period head every page; the generation
time, the export's reference and "Page n of m" end it (pdf_layout.py).

Besides the query's parameters, `params` may carry `export_reference` (the export's reference id,
shown in every footer) and `page_size` ("A4", the default, or "Letter"); the pipeline adds them.
A PDF's cross-reference table comes last, so the document is built in memory and then written to
the sink: the row limit bounds it (10,000 rows is ~250 pages). The rows come as Arrow batches,
counted first in the same snapshot.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from export_engine.core.formats import PDF_MAX_ROWS
from export_engine.errors import ExportPermanentError
from export_engine.streaming.progress import RowProgress
from export_engine.writers.pdf_layout import PAGE_SIZES, Statement
from export_engine.writers.pdf_sections import REQUIRED_COLUMNS, day, decimal_or_none, reconcile, sectioned
from export_engine.writers.pdf_tables import heading, section, summary

if TYPE_CHECKING:
    from psycopg2 import sql

    from export_engine.streaming.rows import RowSource

logging.getLogger("fontTools").setLevel(logging.WARNING)  # it logs every glyph of every subset at INFO


def write_pdf(
    source: RowSource,
    select: sql.Composable,
    params: dict[str, Any],
    sink: Any,
    *,
    progress: RowProgress | None = None,
    generated: datetime | None = None,
) -> int:
    progress = progress or RowProgress(None)
    page_size = params.get("page_size") or "A4"
    if page_size not in PAGE_SIZES:
        raise ExportPermanentError(f"pdf page size {page_size!r}; valid: {', '.join(PAGE_SIZES)}")
    rows: list[dict[str, Any]] = []
    with source.arrow_batches(select, params, count=True) as batches:
        if batches.total is not None and batches.total > PDF_MAX_ROWS:
            raise ExportPermanentError(
                f"a pdf statement holds at most {PDF_MAX_ROWS:,} rows; this export has {batches.total:,}"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in batches.reader.schema.names]
        if missing:
            raise ExportPermanentError(f"a pdf statement needs the columns {', '.join(missing)}")
        for batch in batches.reader:
            for row in batch.select(list(REQUIRED_COLUMNS)).to_pylist():
                row["amount"] = decimal_or_none(row["amount"])
                row["balance_after"] = decimal_or_none(row["balance_after"])
                rows.append(row)
            if len(rows) > PDF_MAX_ROWS:
                raise ExportPermanentError(f"a pdf statement holds at most {PDF_MAX_ROWS:,} rows")
            progress.add(batch.num_rows)
    sections = sectioned(rows)
    for each in sections:
        reconcile(each)  # before any page: a statement that does not add up is never drawn
    pdf = Statement(
        owner=str(params.get("owner", "")),
        period=f"{day(params.get('date_from'))} to {day(params.get('date_to'))}",
        generated=generated or datetime.now(UTC),
        reference=str(params.get("export_reference") or "not recorded"),
        page_size=page_size,
    )
    pdf.add_page()
    heading(pdf, params, sections)
    if len(sections) > 1:
        summary(pdf, sections)
    for each in sections:
        section(pdf, each)
    sink.write(bytes(pdf.output()))
    return len(rows)
