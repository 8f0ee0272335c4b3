"""Notifications through the real stack: the export op completes, the notification sensor (in the
Dagster daemon) sends a signed webhook and a Telegram message to real local peers.

Prints the time from COMPLETED (the export row's `completed_at`, the database's clock, on this
machine) to each arrival; the README quotes it. No wall-clock assertion: performance is measured,
not tested.
"""

from __future__ import annotations

import html
import re
import statistics
import time
from datetime import datetime
from typing import Any

import httpx
import psycopg2
import pytest

from export_engine_tests.conftest import TELEGRAM_PORT, TELEGRAM_SECRET, TELEGRAM_TOKEN
from export_engine_tests.notify_peers import FakeTelegram, Received, WebhookReceiver

pytestmark = pytest.mark.e2e

OWNER = "demo-user-77"
EXPORTS = 5


@pytest.fixture
def telegram():
    fake = FakeTelegram(token=TELEGRAM_TOKEN, port_=TELEGRAM_PORT).start()
    yield fake
    fake.stop()


@pytest.fixture
def receiver():
    peer = WebhookReceiver().start()
    yield peer
    peer.stop()


def _completed_at(api, reference_id: str) -> datetime:
    with psycopg2.connect(api.stack.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT completed_at FROM exports WHERE reference_id = %s", (reference_id,))
        return cur.fetchone()[0]


def _wait_for(what: str, find: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} after {timeout}s")


def test_a_completed_export_reaches_the_webhook_and_telegram_once(api, telegram, receiver):
    headers = api.headers(OWNER)
    api.drain()
    # Link Telegram the way a user does: ask for a link, press Start (Telegram posts the update to us).
    link = api.http.post("/notifications/telegram/link", headers=headers)
    assert link.status_code == 200, link.text
    code = link.json()["code"]
    assert link.json()["link"] == f"https://t.me/{telegram.username}?start={code}"
    update = telegram.start_update(4242, f"/start {code}")
    refused = api.http.post(
        "/notifications/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
    )
    assert refused.status_code == 401
    accepted = api.http.post(
        "/notifications/telegram/webhook",
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
    )
    assert accepted.status_code == 200
    assert api.http.get("/notifications/telegram", headers=headers).json()["linked"] is True
    telegram.messages.clear()

    created = api.http.post(
        "/webhooks", json={"url": receiver.url + "/hooks", "events": ["export.completed"]}, headers=headers
    )
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["secret"]

    webhook_latency, telegram_latency = [], []
    for month in range(1, EXPORTS + 1):
        body = {
            "table_name": "transactions",
            "date_from": f"2023-{month:02d}-01",
            "date_to": f"2023-{month:02d}-28",
            "format": "csv",
            "force_refresh": True,
        }
        reference_id = api.http.post("/export", json=body, headers=headers).json()["reference_id"]
        export = api.wait(OWNER, reference_id)
        assert export["status"] == "COMPLETED", export
        completed = _completed_at(api, reference_id).timestamp()

        def hook(ref: str = reference_id) -> Received | None:
            return next((r for r in receiver.received if r.json["data"]["reference_id"] == ref), None)

        got = _wait_for("webhook", hook)

        # The Telegram text has no reference id: it is the one message that arrived for this export.
        def nth_message(n: int = month) -> dict[str, Any] | None:
            return telegram.messages[n - 1] if len(telegram.messages) >= n else None

        sent = _wait_for("telegram message", nth_message)
        webhook_latency.append(got.at - completed)
        telegram_latency.append(sent["received_at"] - completed)
        assert got.verified and got.json["type"] == "export.completed"

        url = html.unescape(re.search(r'<a href="([^"]+)">Download CSV</a>', sent["text"])[1])
        assert sent["text"].startswith("<b>Export Ready</b>\n\nYour <b>Transactions</b> export is ready.\n")
        assert f"Rows: {export['row_count']:,}\n" in sent["text"]
        assert sent["text"].endswith("<i>Link expires in 24 hours</i>")
        via_api = httpx.get(export["download_url"], timeout=60).content
        assert httpx.get(url, timeout=60).content == via_api and via_api.startswith(b"id,")

    time.sleep(3)  # anything sent twice would have arrived by now
    assert len(telegram.messages) == EXPORTS
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == EXPORTS
    print(
        f"\nCOMPLETED -> arrival over {EXPORTS} exports: "
        f"webhook p50 {statistics.median(webhook_latency):.2f}s (all {', '.join(f'{x:.2f}' for x in webhook_latency)}); "
        f"telegram p50 {statistics.median(telegram_latency):.2f}s (all {', '.join(f'{x:.2f}' for x in telegram_latency)})"
    )
