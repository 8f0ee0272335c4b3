"""Alembic environment: the URL comes from the one Settings object unless the caller passed one."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from export_engine.db.models import Base
from export_engine.db.session import sqlalchemy_url

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from export_engine.settings import get_settings

    url = get_settings().database_url
config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))

connectable = engine_from_config(
    config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with connectable.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        # Serialise concurrent upgrades (several processes starting at once).
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242424242)")
        context.run_migrations()
