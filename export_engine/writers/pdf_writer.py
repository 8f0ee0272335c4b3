"""PDF bank statements through fpdf2, for the transactions dataset, at most `PDF_MAX_ROWS` rows.

A statement a person prints: title, owner, period, the filters applied and the generation time; a
table (date, description, counterparty, category, amount, balance after) whose header repeats on
every page; debits in red with a minus sign, credits in black; amounts right-aligned with two
decimals and thousands separators; totals per currency (count, debits, credits, net) and, when the
statement covers one account, its opening and closing balance; "Page n of m" in every footer.

A PDF's cross-reference table comes last, so the document is built in memory and then written to
the sink: the row limit bounds it (10,000 rows is ~250 pages; memory measured in the README).
DejaVu Sans Condensed (shipped beside this module, Bitstream Vera licence) renders non-ASCII text.
The rows come as Arrow batches, like XLSX, counted first in the same snapshot.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from export_engine.core.formats import PDF_MAX_ROWS
from export_engine.errors import ExportPermanentError
from export_engine.streaming.progress import RowProgress
from export_engine.writers.pdf_layout import (
    REQUIRED_COLUMNS,
    Balances,
    Statement,
    Totals,
    day,
    decimal_or_none,
    heading,
    summary,
    table_row,
)

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
    with source.arrow_batches(select, params, count=True) as rows:
        if rows.total is not None and rows.total > PDF_MAX_ROWS:
            raise ExportPermanentError(
                f"a pdf statement holds at most {PDF_MAX_ROWS:,} rows; this export has {rows.total:,}"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in rows.reader.schema.names]
        if missing:
            raise ExportPermanentError(f"a pdf statement needs the columns {', '.join(missing)}")
        period = f"{day(params.get('date_from'))} to {day(params.get('date_to'))}"
        pdf = Statement(f"Account statement {period}")
        pdf.add_page()
        heading(pdf, params, generated or datetime.now(UTC))
        pdf.table_header()
        pdf.table_started = True
        totals: dict[str, Totals] = defaultdict(Totals)
        balances = Balances()
        written = 0
        for batch in rows.reader:
            for row in batch.select(list(REQUIRED_COLUMNS)).to_pylist():
                row["amount"], row["balance_after"] = (
                    decimal_or_none(row["amount"]),
                    decimal_or_none(row["balance_after"]),
                )
                table_row(pdf, row)
                totals[row["currency"] or ""].add(row["amount"])
                balances.add(row["account_id"], row["amount"], row["balance_after"])
            written += batch.num_rows
            progress.add(batch.num_rows)
            if written > PDF_MAX_ROWS:
                raise ExportPermanentError(f"a pdf statement holds at most {PDF_MAX_ROWS:,} rows")
        pdf.table_started = False
        summary(pdf, totals, balances)
        sink.write(bytes(pdf.output()))
    return written
