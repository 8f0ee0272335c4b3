-- First start of the compose PostgreSQL only: the image runs this as POSTGRES_USER when the data
-- directory is empty (docker-entrypoint-initdb.d). Later starts skip it; `docker compose down -v` resets.
--
--   exports       the export service DB (schema: `alembic upgrade head`, the `migrate` service)
--   dagster       Dagster's run, event and schedule storage (dagster.yaml creates its tables)
--   transactions  a demo source DB. In production SOURCE_DATABASE_URL points at the customer's
--                 transactions DB instead, with a read-only role made the same way as below.

CREATE DATABASE exports;
CREATE DATABASE dagster;
CREATE DATABASE transactions;

-- Only the service owner connects to the service DBs.
REVOKE CONNECT ON DATABASE exports, dagster FROM PUBLIC;

-- The exporter's login: SELECT only, and every session read-only by default.
-- The password is the demo one devstack/seed.py uses; SOURCE_DATABASE_URL's default
-- in docker-compose.yml matches it.
CREATE ROLE export_reader LOGIN PASSWORD 'export_reader';
ALTER ROLE export_reader SET default_transaction_read_only = on;

\connect transactions

-- Same schema as devstack/seed.py SCHEMA_SQL.
CREATE TABLE IF NOT EXISTS transactions (
    id            bigint PRIMARY KEY,
    user_id       text        NOT NULL,
    account_id    text        NOT NULL,
    txn_date      date        NOT NULL,
    posted_at     timestamptz,
    amount        numeric(14, 2) NOT NULL,
    currency      char(3)     NOT NULL,
    description   text,
    counterparty  text,
    category      text,
    tag_ids       text[]      NOT NULL DEFAULT '{}',
    status        text        NOT NULL,
    balance_after numeric(14, 2)
);
CREATE INDEX IF NOT EXISTS ix_transactions_owner_date ON transactions (user_id, txn_date, id);

GRANT USAGE ON SCHEMA public TO export_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO export_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO export_reader;
