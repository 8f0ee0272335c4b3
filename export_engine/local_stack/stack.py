"""The whole product on one machine: PostgreSQL, an S3 server, Dagster webserver + daemon, the gateway.

`make run` and the end-to-end tests both use `LocalStack`, so the tests exercise what people run.
Any of the databases or S3 can be external: set DATABASE_URL / DAGSTER_PG_URL / SOURCE_DATABASE_URL /
S3_ENDPOINT_URL and that part is not started.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from export_engine.db.migrate import upgrade
from export_engine.local_stack import seed
from export_engine.local_stack.postgres import EmbeddedPostgres
from export_engine.settings import lifecycle_expire_days
from export_engine.local_stack.processes import ManagedProcess, free_port, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEV_AWS_KEY = "dev-access-key"  # moto accepts any credentials
DEV_AWS_SECRET = "dev-secret-key"


@dataclass
class Ports:
    postgres: int = 54329
    s3: int = 9000
    dagster: int = 3000
    api: int = 8000

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


@dataclass
class LocalStack:
    """Start with `start_storage()` (databases + S3), then `start_services()` (Dagster + gateway)."""

    home: Path
    ports: Ports = field(default_factory=Ports)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    postgres: EmbeddedPostgres | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    # -- storage ---------------------------------------------------------------------------------
    def start_storage(self) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(self.environ)
        # The dev stack is development unless told otherwise: the gateway accepts the published dev JWT
        # secret only then (Settings defaults to production and refuses it).
        env.setdefault("ENVIRONMENT", "development")
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
        env.update(_dagster_pg_parts(env["DAGSTER_PG_URL"]))

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
        self.env = env
        return env

    def seed(self, rows: int) -> int:
        """Seed the demo table up to `rows` rows (only when we own the source DB)."""
        admin_url = self.env.get("SOURCE_ADMIN_URL")
        if not admin_url:
            return 0
        have = seed.row_count(admin_url)
        if have >= rows:
            return have
        return seed.seed_transactions(admin_url, rows - have)

    # -- services --------------------------------------------------------------------------------
    def start_services(self, *, webserver: bool = True) -> None:
        env = dict(self.env)
        dagster_home = self.home / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        env["DAGSTER_HOME"] = str(dagster_home)
        env.update(
            DAGSTER_HOST="127.0.0.1", DAGSTER_PORT=str(self.ports.dagster), API_PORT=str(self.ports.api)
        )
        workspace = str(PROJECT_ROOT / "workspace.yaml")
        daemon = self._spawn("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], env)
        web = self._spawn(
            "dagster-webserver",
            [
                str(BIN / "dagster-webserver"),
                "-w",
                workspace,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.ports.dagster),
            ],
            env,
        )
        api = self._spawn(
            "api",
            [
                str(BIN / "uvicorn"),
                "api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.api),
                "--workers",
                "1",
                "--log-level",
                "warning",
            ],
            env,
        )
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

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dagster}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        process = ManagedProcess(
            name, argv, env=env, log_path=self.home / "logs" / f"{name}.log", cwd=PROJECT_ROOT
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.postgres is not None:
            self.postgres.stop()


def _dagster_pg_parts(url: str) -> dict[str, str]:
    """dagster.yaml takes the Dagster DB as parts (so it can pin the psycopg2 scheme)."""
    parts = urlsplit(url)
    return {
        "DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_USER": parts.username or "postgres",
        "DAGSTER_PG_PASSWORD": parts.password or "",
        "DAGSTER_PG_DB": parts.path.lstrip("/") or "dagster",
    }


def _ensure_bucket(env: dict[str, str]) -> None:
    from export_engine.resources import S3StorageResource

    storage = S3StorageResource(
        bucket=env["S3_BUCKET"],
        endpoint_url=env.get("S3_ENDPOINT_URL"),
        access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )
    storage.ensure_bucket()
    hours = float(env.get("RETENTION_HOURS", "24"))
    storage.apply_lifecycle(expire_days=lifecycle_expire_days(hours))


_DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"


def daemon_healthy(dagster_url: str) -> bool:
    """True once every required daemon (sensors, run queue, monitoring) has sent a healthy heartbeat."""
    response = httpx.post(f"{dagster_url}/graphql", json={"query": _DAEMON_HEALTH}, timeout=5)
    statuses = response.json()["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
    required = [s for s in statuses if s["required"]]
    return bool(required) and all(s["healthy"] for s in required)
