"""Builds the export query. Identifiers come from the catalog via `sql.Identifier`; values are bound.

The owner condition is always the first one and always uses the spec's owner (the token's subject);
request filters can only narrow the result, and only on the columns the catalog maps them to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg2 import sql

from export_engine.errors import CatalogError

if TYPE_CHECKING:
    from export_engine.core.catalog import Dataset
    from export_engine.core.export_spec import ExportSpec

_OPERATORS = {
    "min": sql.SQL("{column} >= {value}"),
    "max": sql.SQL("{column} <= {value}"),
    "any_of": sql.SQL("{column} = ANY({value})"),
    "overlaps": sql.SQL("{column} && {value}"),  # any_of on an array column: at least one shared element
}


def output_columns(dataset: Dataset, spec: ExportSpec) -> tuple[str, ...]:
    """The spec's columns (in its order), or every catalog column; an unknown name is a `CatalogError`."""
    columns = spec.columns or tuple(dataset.columns)
    unknown = [c for c in columns if c not in dataset.columns]
    if unknown:
        raise CatalogError(f"dataset {dataset.id!r} has no column {unknown[0]!r}")
    return columns


def select_query(dataset: Dataset, spec: ExportSpec) -> tuple[sql.Composed, dict[str, Any]]:
    """`SELECT <columns> FROM <table> WHERE <owner> = %(owner)s AND <date> BETWEEN ... AND <filters> ...`

    Returns the statement and its parameters; a column or filter the dataset lacks is a `CatalogError`.
    """
    conditions = [
        sql.SQL("{} = %(owner)s").format(sql.Identifier(dataset.owner_column)),
        sql.SQL("{} BETWEEN %(date_from)s AND %(date_to)s").format(sql.Identifier(dataset.date_column)),
    ]
    params: dict[str, Any] = {"owner": spec.owner, "date_from": spec.date_from, "date_to": spec.date_to}
    for name, value in spec.filters.items():
        dataset_filter = dataset.filters.get(name)
        if dataset_filter is None:
            raise CatalogError(f"dataset {dataset.id!r} does not support the filter {name!r}")
        kind = dataset_filter.kind
        if kind == "any_of" and dataset.is_array(dataset_filter.column):
            kind = "overlaps"
        placeholder = f"filter_{name}"
        column = sql.Identifier(dataset_filter.column)
        conditions.append(_OPERATORS[kind].format(column=column, value=sql.Placeholder(placeholder)))
        params[placeholder] = list(value) if isinstance(value, tuple) else value
    query = sql.SQL("SELECT {columns} FROM {table} WHERE {conditions} ORDER BY {order}").format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in output_columns(dataset, spec)),
        table=sql.Identifier(*dataset.table.split(".")),
        conditions=sql.SQL(" AND ").join(conditions),
        order=sql.SQL(", ").join(sql.Identifier(c) for c in dataset.order_by),
    )
    return query, params


def with_columns_as_text(select: sql.Composable, columns: list[str], as_text: set[str]) -> sql.Composed:
    """The same rows in the same order, the `as_text` columns cast to text (a subquery scan keeps the order).

    The Arrow path asks for `numeric` as text: the ADBC driver decodes binary numeric ~3× slower than
    the rest of a row together, and Arrow parses the text into decimal128 in a fraction of that.
    """
    return sql.SQL("SELECT {} FROM ({}) AS export_rows").format(
        sql.SQL(", ").join(
            sql.SQL("{0}::text AS {0}").format(sql.Identifier(c)) if c in as_text else sql.Identifier(c)
            for c in columns
        ),
        select,
    )


def limit_zero(select: sql.Composable) -> sql.Composed:
    """The result's columns and types, without running the query."""
    return sql.SQL("SELECT * FROM ({}) AS export_rows LIMIT 0").format(select)


def count_query(select: sql.Composable) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM ({}) AS export_rows").format(select)


def copy_csv(select: sql.Composable) -> sql.Composed:
    return sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(select)


def copy_json_lines(select: sql.Composable) -> sql.Composed:
    """One JSON object per line, built by PostgreSQL.

    CSV-format COPY with a quote and delimiter that JSON text never contains (JSON escapes every
    control character) passes the objects through untouched; text-format COPY would double every
    backslash. A subquery scan keeps the inner ORDER BY: nothing here joins, groups or sorts again.
    """
    return sql.SQL(
        "COPY (SELECT row_to_json(export_row) FROM ({}) AS export_row)"
        " TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
    ).format(select)
