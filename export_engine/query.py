"""Builds the export query. Identifiers come from the catalog via `sql.Identifier`; values are bound."""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg2 import sql

from export_engine.catalog import Dataset

if TYPE_CHECKING:
    from export_engine.request import ExportSpec


def select_query(dataset: Dataset, spec: ExportSpec) -> tuple[sql.Composed, dict[str, object]]:
    """`SELECT <columns> FROM <table> WHERE owner = %(owner)s AND date BETWEEN ... ORDER BY <stable key>`."""
    query = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {owner} = %(owner)s"
        " AND {date} BETWEEN %(date_from)s AND %(date_to)s ORDER BY {order}"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in dataset.columns),
        table=sql.Identifier(*dataset.table.split(".")),
        owner=sql.Identifier(dataset.owner_column),
        date=sql.Identifier(dataset.date_column),
        order=sql.SQL(", ").join(sql.Identifier(c) for c in dataset.order_by),
    )
    params = {"owner": spec.owner, "date_from": spec.date_from, "date_to": spec.date_to}
    return query, params


def copy_csv(select: sql.Composable) -> sql.Composed:
    return sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(select)
