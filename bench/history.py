"""A bulk generator of history: N copies of a real finished export, in Dagster's tables and ours.

Copies every row of one finished export run (`runs`, `run_tags`, `event_logs`: whatever columns this
Dagster version has, read from information_schema) with a new run id written wherever the old one
appears, and the export's row as EXPIRED with a new reference id and its events, in one INSERT ...
SELECT over generate_series per table: 100k exports in seconds, the same bytes as 100k real runs.
"""

from __future__ import annotations

import psycopg2
from psycopg2 import sql


def _new_id(seed: str) -> sql.Composable:
    return sql.SQL("md5({} || g)::uuid::text").format(sql.Literal(seed))


def _columns(cur, table: str) -> list[tuple[str, str]]:
    """(name, type) of every column but generated keys (serials and identities get new values)."""
    cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = %s AND is_identity = 'NO' AND coalesce(column_default, '') NOT LIKE 'nextval%%' "
        "ORDER BY ordinal_position",
        (table,),
    )
    return cur.fetchall()


def _clone(
    cur,
    table: str,
    key: str,
    template: str,
    ids: dict[str, str],
    count: int,
    fresh: dict[str, str] | None = None,
) -> None:
    """Insert `count` copies of `table`'s rows whose `key` is a template id, every template id (the
    keys of `ids`) replaced by copy g's own (`md5(ids[old] || g)`) in every text column."""
    targets, values = [], []
    for name, kind in _columns(cur, table):
        column = sql.Identifier(name)
        targets.append(column)
        if fresh and name in fresh:  # a unique value of its own per copy (e.g. an event's evt_ id)
            values.append(sql.SQL(fresh[name]))
        elif kind in ("text", "character varying", "json", "jsonb", "character"):
            value: sql.Composable = sql.SQL("{}::text").format(column)
            for old, seed in ids.items():
                value = sql.SQL("replace({}, {}, {})").format(value, sql.Literal(old), _new_id(seed))
            cast = {"json": "::json", "jsonb": "::jsonb"}.get(kind, "")
            values.append(value + sql.SQL(cast))
        else:
            values.append(column)
    cur.execute(
        sql.SQL(
            "INSERT INTO {table} ({targets}) SELECT {values} FROM {table} "
            "CROSS JOIN generate_series(1, %(count)s) AS g WHERE {key} = %(template)s"
        ).format(
            table=sql.Identifier(table),
            targets=sql.SQL(", ").join(targets),
            values=sql.SQL(", ").join(values),
            key=sql.Identifier(key),
        ),
        {"count": count, "template": template},
    )


def load_history(dagster_url: str, export_url: str, count: int) -> None:
    """Add `count` historic exports (EXPIRED, with one finished run each) to both databases."""
    with psycopg2.connect(export_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT reference_id, dagster_run_id FROM exports WHERE status = 'COMPLETED' "
            "AND dagster_run_id IS NOT NULL ORDER BY created_at LIMIT 1"
        )
        reference_id, run_id = cur.fetchone()
        ids = {reference_id: "ref", run_id: "run"}
        _clone(cur, "exports", "reference_id", reference_id, ids, count)
        cur.execute(
            "UPDATE exports SET status = 'EXPIRED', created_at = created_at - interval '30 days' "
            "WHERE reference_id IN (SELECT md5('ref' || g)::uuid::text FROM generate_series(1, %s) AS g)",
            (count,),
        )
        _clone(
            cur, "export_events", "reference_id", reference_id, ids, count, {"id": "'evt_' || md5(id || g)"}
        )
        cur.execute("UPDATE export_events SET dispatched_at = now() WHERE dispatched_at IS NULL")
    with psycopg2.connect(dagster_url) as conn, conn.cursor() as cur:
        for table in ("runs", "run_tags", "event_logs"):
            _clone(cur, table, "run_id", run_id, ids, count)
        cur.execute("ANALYZE")
