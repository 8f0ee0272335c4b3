"""Small read-only look-ups in the source (transactions) DB for the web page and the export request.

- `filter_values`: the caller's own account ids or tag ids, to fill the Export modal's pick-lists
  (bounded and searchable; the owner condition is always there, as in the export query).
- `estimate_rows`: the number of rows an export will write, for an honest progress bar. An exact
  `count(*)` when the planner expects a modest number of rows, the planner's estimate otherwise;
  computed once per export and process, under a short statement timeout.
- `first_date`: the day of the owner's first row in some datasets, where a request that leaves
  `date_from` out starts ("export everything").
- `unknown_values`: account or tag ids in a request that the owner does not have, so a typo is a
  422 naming them instead of an empty file.

Identifiers come from the catalog (`sql.Identifier`), values are bound; sessions are read-only and
carry a short statement timeout. Plain psycopg2: the gateway imports no Dagster resource.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import psycopg2
from fastapi.exceptions import RequestValidationError
from psycopg2 import sql

from export_engine.core.catalog import Catalog, Dataset
from export_engine.core.export_spec import ExportSpec
from export_engine.core.query import count_query, select_query
from export_engine.errors import CatalogError

if TYPE_CHECKING:
    from api.schemas import ExportRequest, ExportView
    from export_engine.db.models import Export

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT_MS = 2000
EXACT_COUNT_MAX_ESTIMATE = (
    2_000_000  # above this the planner's estimate is the total: a count would cost seconds
)


class SourceLookupFailed(Exception):
    """A look-up that cannot be answered (the source DB is down or too slow); carries the cause."""


@dataclass(frozen=True)
class RowEstimate:
    rows: int
    exact: bool


def _like_pattern(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SourceLookups:
    def __init__(self, dsn: str, *, timeout_ms: int = LOOKUP_TIMEOUT_MS, cache_size: int = 4096) -> None:
        self._dsn = dsn
        self._options = f"-c default_transaction_read_only=on -c statement_timeout={int(timeout_ms)}"
        self._estimates: OrderedDict[str, RowEstimate] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @classmethod
    def from_dsn(cls, dsn: str) -> SourceLookups:
        return cls(dsn)

    def _fetch(self, statement: sql.Composable, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            conn = psycopg2.connect(
                self._dsn,
                options=self._options,
                application_name="export-gateway-lookups",
                connect_timeout=10,
            )
            try:
                with conn.cursor() as cur:
                    cur.execute(statement, params)
                    return cur.fetchall()
            finally:
                conn.close()
        except psycopg2.Error as exc:
            raise SourceLookupFailed(f"{type(exc).__name__}: {str(exc).strip()}") from exc

    def filter_values(
        self, dataset: Dataset, filter_name: str, *, owner: str, search: str = "", limit: int = 100
    ) -> tuple[list[str], bool]:
        """Up to `limit` distinct values of the filter's column in the owner's rows: (values, truncated)."""
        dataset_filter = dataset.filters[filter_name]
        if dataset_filter.values:
            matching = [v for v in dataset_filter.values if search.lower() in v.lower()]
            return matching[:limit], len(matching) > limit
        column = sql.Identifier(dataset_filter.column)
        value = sql.SQL("v.value") if dataset.is_array(dataset_filter.column) else column
        source = (
            sql.SQL("{table} CROSS JOIN LATERAL unnest({column}) AS v(value)")
            if dataset.is_array(dataset_filter.column)
            else sql.SQL("{table}")
        ).format(table=sql.Identifier(*dataset.table.split(".")), column=column)
        statement = sql.SQL(
            "SELECT DISTINCT {value}::text FROM {source} WHERE {owner} = %(owner)s AND {value} IS NOT NULL"
            " AND {value}::text <> '' AND {value}::text ILIKE %(pattern)s ORDER BY 1 LIMIT %(limit)s"
        ).format(value=value, source=source, owner=sql.Identifier(dataset.owner_column))
        if "\x00" in search:  # PostgreSQL text cannot hold NUL, so nothing matches
            return [], False
        rows = self._fetch(statement, {"owner": owner, "pattern": _like_pattern(search), "limit": limit + 1})
        values = [row[0] for row in rows]
        return values[:limit], len(values) > limit

    def unknown_values(
        self, dataset: Dataset, filter_name: str, *, owner: str, values: list[str]
    ) -> list[str]:
        """The `values` none of the owner's rows has in the filter's column (one scan of the owner's rows).

        Catalog-listed values are checked elsewhere; a look-up that fails or times out returns [] (the
        export then simply matches nothing for those values, as before this check existed).
        """
        dataset_filter = dataset.filters[filter_name]
        column = sql.Identifier(dataset_filter.column)
        if dataset.is_array(dataset_filter.column):
            found = sql.SQL(
                "SELECT DISTINCT v.value FROM {table} CROSS JOIN LATERAL unnest({column}) AS v(value)"
                " WHERE {owner} = %(owner)s AND {column} && %(values)s AND v.value = ANY(%(values)s)"
            )
        else:
            found = sql.SQL(
                "SELECT DISTINCT {column}::text FROM {table} WHERE {owner} = %(owner)s"
                " AND {column}::text = ANY(%(values)s)"
            )
        statement = found.format(
            table=sql.Identifier(*dataset.table.split(".")),
            column=column,
            owner=sql.Identifier(dataset.owner_column),
        )
        storable = [v for v in values if "\x00" not in v]  # PostgreSQL text cannot hold NUL: never present
        try:
            present = {row[0] for row in self._fetch(statement, {"owner": owner, "values": storable})}
        except SourceLookupFailed as exc:
            log.warning("could not check %s values against the owner's rows: %s", filter_name, exc)
            return []
        return sorted(set(values) - present)

    def estimate_rows(self, reference_id: str, dataset: Dataset, spec: ExportSpec) -> RowEstimate | None:
        """The export's expected row count (cached per export); None when it cannot be had cheaply."""
        with self._lock:
            if reference_id in self._estimates:
                self._estimates.move_to_end(reference_id)
                return self._estimates[reference_id]
        estimate = self._estimate(dataset, spec)
        if estimate is not None:
            with self._lock:
                self._estimates[reference_id] = estimate
                while len(self._estimates) > self._cache_size:
                    self._estimates.popitem(last=False)
        return estimate

    def first_date(self, datasets: list[Dataset], *, owner: str) -> date | None:
        """The earliest date of the owner's rows in `datasets` (None: no rows); raises SourceLookupFailed.
        One index probe on (owner, date) per dataset."""
        if not datasets:
            return None
        statement = sql.SQL("SELECT min(first) FROM ({}) AS firsts").format(
            sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT min({date})::date AS first FROM {table} WHERE {owner} = %(owner)s").format(
                    date=sql.Identifier(d.date_column),
                    table=sql.Identifier(*d.table.split(".")),
                    owner=sql.Identifier(d.owner_column),
                )
                for d in datasets
            )
        )
        ((first,),) = self._fetch(statement, {"owner": owner})
        return first if isinstance(first, date) else None

    def _estimate(self, dataset: Dataset, spec: ExportSpec) -> RowEstimate | None:
        select, params = select_query(dataset, spec)
        try:
            (plan,) = self._fetch(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(select), params)[0]
            planned = int(plan[0]["Plan"]["Plan Rows"])
            if planned > EXACT_COUNT_MAX_ESTIMATE:
                return RowEstimate(planned, exact=False)
            try:
                ((counted,),) = self._fetch(count_query(select), params)
                return RowEstimate(int(counted), exact=True)
            except SourceLookupFailed as exc:  # e.g. the statement timeout: the plan is still a fair total
                log.info("exact row count skipped: %s", exc)
                return RowEstimate(planned, exact=False)
        except (SourceLookupFailed, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("no row estimate for the progress bar: %s", exc)
            return None


def progress_percent(*, status: str, rows_written: int | None, estimate: RowEstimate | None) -> int | None:
    """0–100 while in flight (never 100 before the file exists), 100 once COMPLETED, None when unknown."""
    if status == "COMPLETED":
        return 100
    if status == "PENDING":
        return 0
    if status != "RUNNING" or estimate is None:
        return None
    if estimate.rows <= 0:
        return 99
    return max(0, min(99, (rows_written or 0) * 100 // estimate.rows))


def fill_progress(view: ExportView, export: Export, *, catalog: Catalog, lookups: SourceLookups) -> None:
    """Add `rows_estimated` and `progress` to one export's view (the estimate only while in flight)."""
    estimate = None
    if export.status in ("PENDING", "RUNNING"):
        try:
            dataset = catalog.get(export.table_name)
        except CatalogError:
            dataset = None
        if dataset is not None:
            spec = ExportSpec.from_canonical(export.params)
            estimate = lookups.estimate_rows(export.reference_id, dataset, spec)
    if estimate is not None:
        view.rows_estimated, view.rows_estimated_exact = estimate.rows, estimate.exact
    view.progress = progress_percent(status=export.status, rows_written=view.rows_written, estimate=estimate)


OWNED_VALUE_NOUNS = {"account_ids": "accounts", "tag_ids": "tags"}


def check_owned_values(
    request: ExportRequest, *, owner: str, catalog: Catalog, lookups: SourceLookups
) -> None:
    """Account and tag ids the owner does not have are a 422 naming them (they would export nothing)."""
    try:
        dataset = catalog.get(request.table_name)
    except CatalogError:
        return  # the service answers the unknown dataset
    problems = []
    for name, noun in OWNED_VALUE_NOUNS.items():
        values = getattr(request.filters, name)
        dataset_filter = dataset.filters.get(name)
        if not values or dataset_filter is None or dataset_filter.values:
            continue
        unknown = lookups.unknown_values(dataset, name, owner=owner, values=values)
        if unknown:
            problems.append(
                {
                    "type": "value_error",
                    "loc": ("body", "filters", name),
                    "msg": f"not among your {noun} in {dataset.id}: {', '.join(unknown)}",
                    "input": values,
                }
            )
    if problems:
        raise RequestValidationError(problems)
