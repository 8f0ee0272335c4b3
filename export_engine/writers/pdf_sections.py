"""A statement's sections: one per (account, currency), each reconciled before anything is drawn.

A bank statement is read per account: its rows, in date order, carry the account's running balance
(`balance_after`), so the balance before the first row is the opening balance and the last row's is
the closing one. `reconcile` checks every step (previous balance + amount = this balance) and so
opening + sum of the rows = closing; a statement whose numbers do not add up is refused with the
reason (`ExportPermanentError`: a FAILED export), never printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from export_engine.errors import ExportPermanentError

STATEMENT_COLUMNS = ("txn_date", "description", "counterparty", "category", "amount", "balance_after")
REQUIRED_COLUMNS = ("id", *STATEMENT_COLUMNS, "account_id", "currency")


def money(value: Decimal, currency: str) -> str:
    """`-1,860.37 EUR`: two decimals, thousands separators, and the ISO code on every amount."""
    return f"{value:,.2f} {currency}".rstrip()


def day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def decimal_or_none(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


@dataclass
class Section:
    """The rows of one account in one currency, in the export's (txn_date, id) order."""

    account: str
    currency: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    opening: Decimal = Decimal(0)
    closing: Decimal = Decimal(0)
    money_in: Decimal = Decimal(0)
    money_out: Decimal = Decimal(0)

    @property
    def net(self) -> Decimal:
        return self.money_in + self.money_out

    @property
    def title(self) -> str:
        return f"{self.account} · {self.currency}"


def sectioned(rows: list[dict[str, Any]]) -> list[Section]:
    """The rows grouped by (account, currency), sections sorted by account then currency."""
    sections: dict[tuple[str, str], Section] = {}
    for row in rows:
        key = (row["account_id"] or "", (row["currency"] or "").strip())
        section = sections.get(key)
        if section is None:
            section = sections[key] = Section(*key)
        section.rows.append(row)
    return [sections[key] for key in sorted(sections)]


def _refuse(section: Section, row: dict[str, Any], reason: str) -> ExportPermanentError:
    return ExportPermanentError(
        f"the statement does not reconcile, so it was not printed: account {section.account} "
        f"({section.currency}), transaction {row['id']} on {day(row['txn_date'])}: {reason}"
    )


def reconcile(section: Section) -> None:
    """Fill in opening, closing and totals; raise `ExportPermanentError` when the balances do not add up."""
    balance: Decimal | None = None
    for row in section.rows:
        amount, after = row["amount"], row["balance_after"]
        if amount is None or after is None:
            missing = "amount" if amount is None else "balance_after"
            raise _refuse(section, row, f"it has no {missing}")
        if balance is None:
            balance = section.opening = after - amount
        elif balance + amount != after:
            raise _refuse(
                section,
                row,
                f"the balance before it is {money(balance, section.currency)} and its amount "
                f"{money(amount, section.currency)}, so its balance must be "
                f"{money(balance + amount, section.currency)}, not {money(after, section.currency)}",
            )
        balance = after
        if amount < 0:
            section.money_out += amount
        else:
            section.money_in += amount
    section.closing = section.opening if balance is None else balance
    if section.opening + section.net != section.closing:  # the steps above make this hold; say so
        raise _refuse(section, section.rows[-1], "opening balance + transactions != closing balance")
