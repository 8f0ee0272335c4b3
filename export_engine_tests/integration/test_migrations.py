"""Migrations are reversible and match the models."""

from __future__ import annotations

import psycopg2
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from export_engine.db.migrate import downgrade, upgrade
from export_engine.db.models import Base
from export_engine.db.session import sqlalchemy_url


def _fresh_db(stack, name: str) -> str:
    admin = psycopg2.connect(stack.postgres.url())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return stack.postgres.url(name)


def test_upgrade_downgrade_upgrade(stack):
    url = _fresh_db(stack, "migration_check")
    upgrade(url)
    downgrade(url, "base")
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('exports')").scalar() is None
    upgrade(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
