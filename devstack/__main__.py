"""`make run`: the whole product on embedded defaults, one sample export, then stay up until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import date
from pathlib import Path

import httpx

from api.security import issue_token
from devstack.processes import PROJECT_ROOT
from devstack.stack import LocalStack, Ports
from export_engine.settings import DEV_JWT_SECRET


def _sample_export(stack: LocalStack, token: str) -> dict | None:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"table_name": "transactions", "date_from": "2024-01-01", "date_to": "2024-12-31", "format": "csv"}
    created = httpx.post(f"{stack.api_url}/export", json=body, headers=headers, timeout=30)
    created.raise_for_status()
    reference_id = created.json()["reference_id"]
    print(f"  POST /export -> {created.status_code} {created.json()['status']} reference_id={reference_id}")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        export = httpx.get(f"{stack.api_url}/export/{reference_id}", headers=headers, timeout=30).json()
        if export["status"] not in ("PENDING", "RUNNING"):
            return export
        time.sleep(1)
    print(f"  still {export['status']} after 5 minutes (other exports queued ahead?); the stack stays up")
    return None


def _telegram_note(env: dict[str, str]) -> str:
    if not env.get("TELEGRAM_BOT_TOKEN"):
        return (
            "off. To turn it on: create a bot with @BotFather, then run\n"
            "             TELEGRAM_BOT_TOKEN=<token> make run   (the bot reads /start by long polling;\n"
            "             POST /notifications/telegram/link gives each user their t.me link)"
        )
    if env.get("TELEGRAM_WEBHOOK_SECRET"):
        return "on (updates at POST /notifications/telegram/webhook, secret token checked)"
    return "on (updates by long polling; POST /notifications/telegram/link gives a user's t.me link)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=int(os.environ.get("SEED_ROWS", 1_000_000)))
    parser.add_argument("--home", type=Path, default=PROJECT_ROOT / ".local")
    parser.add_argument("--no-sample", action="store_true", help="skip the sample export")
    args = parser.parse_args()

    ports = Ports(
        postgres=int(os.environ.get("PG_PORT", 54329)),
        s3=int(os.environ.get("S3_PORT", 9000)),
        dagster=int(os.environ.get("DAGSTER_PORT", 3000)),
        api=int(os.environ.get("API_PORT", 8000)),
        redis=int(os.environ.get("REDIS_PORT", 6379)),
        code_server=int(os.environ.get("CODE_SERVER_PORT", 4000)),
    )
    stack = LocalStack(args.home, ports)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        started = time.monotonic()
        print("starting PostgreSQL, S3 and the Redis broker ...", flush=True)
        env = stack.start_storage()
        print(f"seeding demo transactions up to {args.rows:,} rows ...", flush=True)
        print(f"  transactions: {stack.seed(args.rows, today=date.today()):,} rows")
        print("starting Dagster webserver, daemon, the run workers and the gateway ...", flush=True)
        stack.start_services()
        secret = env.get("JWT_SECRET") or DEV_JWT_SECRET
        token = issue_token("demo-user-1", secret=secret, ttl_seconds=7 * 24 * 3600)
        print(f"up in {time.monotonic() - started:.0f}s")
        if not args.no_sample:
            print("running a sample export for demo-user-1 ...", flush=True)
            export = _sample_export(stack, token) or {}
            if export:
                print(
                    f"  status={export['status']} rows={export.get('row_count')} bytes={export.get('file_size_bytes')}"
                )
            if export.get("error"):
                print(f"  error: {export['error']}")
            if export.get("download_url"):
                print(f"  signed URL (valid until {export['expires_at']}):\n  {export['download_url']}")
        # Only the published development secret is printed; a secret from the environment never is.
        secret_note = (
            f"{secret} (the published development default: set JWT_SECRET for anything else)"
            if not env.get("JWT_SECRET")
            else "from JWT_SECRET (not printed)"
        )
        print(
            f"""
Gateway      {stack.api_url}   (OpenAPI docs: {stack.api_url}/docs)
Web page     {stack.api_url}/analytics/datasets#token={token}
             (opens signed in as demo-user-1; the token moves to the tab's session storage)
Dagster UI   {stack.dagster_url}
S3 endpoint  {env["S3_ENDPOINT_URL"]}  bucket={env["S3_BUCKET"]}
Run broker   {env["CELERY_BROKER_URL"]}  queue={env["CELERY_QUEUE"]}
Run workers  {", ".join(w.name for w in stack.workers)}
Logs         {args.home / "logs"}
JWT secret   {secret_note}
Webhooks     on; loopback receivers allowed here (WEBHOOK_ALLOWED_NETWORKS={env["WEBHOOK_ALLOWED_NETWORKS"]})
Telegram     {_telegram_note(env)}
Dev token for demo-user-1 (7 days):
  export TOKEN={token}

  curl -s -X POST {stack.api_url}/export -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
       -d '{{"table_name": "transactions", "date_from": "2023-01-01", "date_to": "2023-03-31"}}'
  curl -s {stack.api_url}/export/<reference_id> -H "Authorization: Bearer $TOKEN"

Press Ctrl-C to stop everything.""",
            flush=True,
        )
        while all(p.alive() for p in stack.processes):
            time.sleep(1)
        dead = [p.name for p in stack.processes if not p.alive()]
        print(f"a service exited: {', '.join(dead)}; see {args.home / 'logs'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
