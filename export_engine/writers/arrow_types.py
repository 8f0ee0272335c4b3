"""Arrow schemas for the typed formats, from what the PostgreSQL ADBC driver returns.

The driver hands `numeric` over as an opaque extension type holding the decimal text, with the
column's precision and scale in the field metadata (`POSTGRESQL:typmod`). Parquet gets exact
`decimal128(p, s)`; Excel, whose numbers are doubles, gets `float64`. Excel has no list cell, so
arrays become their elements joined by ", ". An Excel date is a number of days since 1899-12-30
shown with a date format: dates and timestamps become that serial number here (timestamps as UTC
wall clock, to the microsecond; the XLSX library would round them to the second). Decimals reach
Excel through their text, so a cell holds the double nearest to the amount (`-1860.37`), never the
noise of Arrow's scaled-integer cast (`-1860.3700000000001`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

UNCONSTRAINED_NUMERIC = pa.decimal128(
    38, 10
)  # `numeric` without (p, s): give catalog columns a typmod instead
LIST_SEPARATOR = ", "
EXCEL_UNIX_EPOCH = 25569  # 1970-01-01 as an Excel serial day (1900 date system)
_MICROSECONDS_PER_DAY = 86_400_000_000
_TYPMOD_KEY = b"POSTGRESQL:typmod"
_VARHDRSZ = 4


def _is_extension(field: pa.Field) -> bool:
    return isinstance(field.type, pa.BaseExtensionType)


def is_numeric_field(field: pa.Field) -> bool:
    """The driver's opaque `numeric` (its decimal text), before `parquet_schema`/`xlsx_schema`."""
    return _is_extension(field) and getattr(field.type, "type_name", None) == "numeric"


def numeric_decimal(field: pa.Field) -> pa.DataType:
    """`numeric(p, s)` → `decimal128(p, s)` (decimal256 beyond 38 digits)."""
    typmod = int((field.metadata or {}).get(_TYPMOD_KEY, b"-1"))
    if typmod < _VARHDRSZ:
        return UNCONSTRAINED_NUMERIC
    return decimal_type(((typmod - _VARHDRSZ) >> 16) & 0xFFFF, (typmod - _VARHDRSZ) & 0xFFFF)


def decimal_type(precision: int | None, scale: int | None) -> pa.DataType:
    """`numeric(p, s)` → `decimal128(p, s)` (decimal256 beyond 38 digits); bare `numeric` has no p."""
    if not precision:
        return UNCONSTRAINED_NUMERIC
    return pa.decimal128(precision, scale or 0) if precision <= 38 else pa.decimal256(precision, scale or 0)


def parquet_schema(source: pa.Schema) -> pa.Schema:
    fields = []
    for field in source:
        if is_numeric_field(field):
            target = numeric_decimal(field)
        elif _is_extension(field):
            target = pa.string()
        elif pa.types.is_list(field.type):
            target = pa.list_(field.type.value_type)  # drops the driver's metadata on the element field
        else:
            target = field.type
        fields.append(pa.field(field.name, target))
    return pa.schema(fields)


def xlsx_schema(source: pa.Schema) -> pa.Schema:
    fields = []
    for field in source:
        kind = field.type
        if is_numeric_field(field) or pa.types.is_decimal(kind) or is_temporal(kind):
            target = pa.float64()
        elif _is_extension(field) or pa.types.is_list(kind) or pa.types.is_large_list(kind):
            target = pa.string()
        else:
            target = kind
        fields.append(pa.field(field.name, target))
    return pa.schema(fields)


def is_temporal(kind: pa.DataType) -> bool:
    return pa.types.is_date(kind) or pa.types.is_timestamp(kind)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast each column of a driver batch to the target schema (from `parquet_schema`/`xlsx_schema`)."""
    columns = [_convert(column, target.type) for column, target in zip(batch.columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _convert(column: pa.Array, target: pa.DataType) -> pa.Array:
    if column.type == target:
        return column
    if isinstance(column.type, pa.BaseExtensionType):
        column = column.storage
    if pa.types.is_floating(target) and is_temporal(column.type):
        return _excel_serial(column)
    if pa.types.is_floating(target) and pa.types.is_decimal(column.type):
        # decimal → float64 scales an integer by 10^-s and misses the nearest double; parsing the
        # decimal's text rounds correctly, so the file holds what the database holds.
        return pc.cast(pc.cast(column, pa.string()), target)
    if pa.types.is_string(target) and (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return pc.binary_join(pc.cast(column, pa.list_(pa.string())), LIST_SEPARATOR)
    return pc.cast(column, target)


def _excel_serial(column: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(column.type):
        micros = pc.cast(pc.cast(column, pa.timestamp("us", tz=column.type.tz)), pa.int64())
        days = pc.divide(pc.cast(micros, pa.float64()), float(_MICROSECONDS_PER_DAY))
    else:
        days = pc.cast(pc.cast(column, pa.date32()).cast(pa.int32()), pa.float64())
    return pc.add(days, float(EXCEL_UNIX_EPOCH))
