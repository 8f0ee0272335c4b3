"""The statement's page layout: heading, table rows, totals and balances, drawn with fpdf2.

DejaVu Sans Condensed (shipped beside this module in fonts/, Bitstream Vera licence) renders
non-ASCII text. `write_pdf` (pdf_writer.py) feeds the rows; this module only draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

STATEMENT_COLUMNS = ("txn_date", "description", "counterparty", "category", "amount", "balance_after")
REQUIRED_COLUMNS = (*STATEMENT_COLUMNS, "account_id", "currency")
_FONTS = Path(__file__).with_name("fonts")
_FONT = "DejaVu"
# (heading, width in mm, alignment); A4 portrait less 12 mm margins = 186 mm
_TABLE = (
    ("Date", 20.0, "L"),
    ("Description", 52.0, "L"),
    ("Counterparty", 34.0, "L"),
    ("Category", 22.0, "L"),
    ("Amount", 28.0, "R"),
    ("Balance", 30.0, "R"),
)
_ROW_HEIGHT = 5.0
_DEBIT_RGB = (176, 0, 32)


def money(value: Decimal | None) -> str:
    """`-1,860.37`; an empty cell for no value."""
    return "" if value is None else f"{value:,.2f}"


@dataclass
class Totals:
    count: int = 0
    debits: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)

    def add(self, amount: Decimal | None) -> None:
        self.count += 1
        if amount is None:
            return
        if amount < 0:
            self.debits += amount
        else:
            self.credits += amount


@dataclass
class Balances:
    """Opening and closing balance of the one account a statement covers (None for several)."""

    accounts: set[str] = field(default_factory=set)
    opening: Decimal | None = None
    closing: Decimal | None = None
    first_seen: bool = False

    def add(self, account: str | None, amount: Decimal | None, balance: Decimal | None) -> None:
        self.accounts.add(account or "")
        if not self.first_seen:
            self.first_seen = True
            if balance is not None and amount is not None:
                self.opening = balance - amount
        self.closing = balance


class Statement(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(auto=False)
        self.add_font(_FONT, "", str(_FONTS / "DejaVuSansCondensed.ttf"))
        self.add_font(_FONT, "B", str(_FONTS / "DejaVuSansCondensed-Bold.ttf"))
        self.set_title(title)
        self.set_creator("export engine")
        self.alias_nb_pages("{nb}")
        self.table_started = False
        self._widths: dict[str, float] = {}

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(_FONT, "", 7.5)
        self.set_text_color(90, 90, 90)
        self.cell(0, 4, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0, 0, 0)

    def table_header(self) -> None:
        self.set_font(_FONT, "B", 8)
        self.set_fill_color(230, 230, 230)
        for heading, width, align in _TABLE:
            self.cell(width, 6, heading, border="B", align=align, fill=True)
        self.ln(6)
        self.set_font(_FONT, "", 8)

    def ensure_room(self, height: float) -> None:
        if self.get_y() + height > self.h - 16:
            self.add_page()
            if self.table_started:
                self.table_header()

    def width_of(self, text: str) -> float:
        """`get_string_width` in the table's font, remembered: amounts and descriptions repeat a lot."""
        width = self._widths.get(text)
        if width is None:
            width = self._widths[text] = self.get_string_width(text)
            if len(self._widths) > 50_000:
                self._widths.clear()
        return width

    def fitted(self, text: str, width: float) -> str:
        """The text on one line within `width` mm, shortened with an ellipsis when it does not fit."""
        text = " ".join(text.split())  # a newline inside a description stays on the row
        room = width - 2 * self.c_margin
        if self.width_of(text) <= room:
            return text
        while text and self.width_of(text + "…") > room:
            text = text[: max(len(text) - max(len(text) // 8, 1), 0)]
        return text + "…"


def _filters_text(params: dict[str, Any]) -> str:
    parts = []
    for name, value in sorted(params.items()):
        if not name.startswith("filter_"):
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"{name.removeprefix('filter_')}: {shown}")
    return "; ".join(parts) or "none"


def heading(pdf: Statement, params: dict[str, Any], generated: datetime) -> None:
    pdf.set_font(_FONT, "B", 15)
    pdf.cell(0, 8, "Account statement", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FONT, "", 9)
    accounts = params.get("filter_account_ids")
    lines = (
        ("Owner", str(params.get("owner", ""))),
        ("Account", ", ".join(accounts) if accounts else "all accounts"),
        ("Period", f"{day(params.get('date_from'))} to {day(params.get('date_to'))}"),
        ("Filters", _filters_text(params)),
        ("Generated", generated.strftime("%Y-%m-%d %H:%M UTC")),
    )
    for label, value in lines:
        pdf.set_font(_FONT, "B", 9)
        pdf.cell(24, 5, label)
        pdf.set_font(_FONT, "", 9)
        pdf.cell(0, 5, pdf.fitted(value, 160), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)


def day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def decimal_or_none(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


_AMOUNT_CELL = 4


def table_row(pdf: Statement, row: dict[str, Any]) -> None:
    """One table row with `text()`: ~6x cheaper than `cell()`, which lays out every cell as a line."""
    pdf.ensure_room(_ROW_HEIGHT)
    amount = row["amount"]
    cells = (
        day(row["txn_date"]) if row["txn_date"] is not None else "",
        row["description"] or "",
        row["counterparty"] or "",
        row["category"] or "",
        money(amount),
        money(row["balance_after"]),
    )
    top = pdf.get_y()
    baseline = top + _ROW_HEIGHT * 0.72
    x = pdf.l_margin
    for n, ((_, width, align), text) in enumerate(zip(_TABLE, cells, strict=True)):
        if text:
            debit = n == _AMOUNT_CELL and amount is not None and amount < 0
            if debit:
                pdf.set_text_color(*_DEBIT_RGB)
            if align == "R":
                pdf.text(x + width - pdf.c_margin - pdf.width_of(text), baseline, text)
            else:
                pdf.text(x + pdf.c_margin, baseline, pdf.fitted(text, width))
            if debit:
                pdf.set_text_color(0, 0, 0)
        x += width
    pdf.set_y(top + _ROW_HEIGHT)


def summary(pdf: Statement, totals: dict[str, Totals], balances: Balances) -> None:
    pdf.ensure_room(12 + 6 * (len(totals) + 3))
    pdf.ln(4)
    pdf.set_font(_FONT, "B", 10)
    pdf.cell(0, 6, "Totals", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    widths = (24.0, 28.0, 36.0, 36.0, 36.0)
    headings = ("Currency", "Transactions", "Debits", "Credits", "Net")
    pdf.set_font(_FONT, "B", 8)
    for heading, width in zip(headings, widths, strict=True):
        pdf.cell(width, 5, heading, border="B", align="L" if heading == "Currency" else "R")
    pdf.ln(5)
    pdf.set_font(_FONT, "", 8)
    if not totals:
        pdf.cell(0, 5, "No transactions in this period.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for currency, total in sorted(totals.items()):
        values = (
            currency or "-",
            f"{total.count:,}",
            money(total.debits),
            money(total.credits),
            money(total.debits + total.credits),
        )
        for n, (text, width) in enumerate(zip(values, widths, strict=True)):
            pdf.cell(width, 5, text, align="L" if n == 0 else "R")
        pdf.ln(5)
    pdf.ln(2)
    if len(balances.accounts) == 1 and len(totals) == 1:
        for label, balance in (("Opening balance", balances.opening), ("Closing balance", balances.closing)):
            pdf.set_font(_FONT, "B", 8)
            pdf.cell(52, 5, label)
            pdf.set_font(_FONT, "", 8)
            pdf.cell(36, 5, money(balance), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    elif balances.accounts:
        pdf.cell(
            0,
            5,
            "Opening and closing balances are shown for a statement of one account in one currency.",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
