"""Lifecycle events, webhooks and Telegram against the real export DB, S3 and real HTTP peers.

The sender here is the same `Notifier` the notification sensor runs (a pass at a time, so each test
decides when time moves); the end-to-end tier runs it inside the Dagster daemon.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from api.main import create_app
from api.security import issue_token
from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Delivery, Export, ExportEvent, WebhookEndpoint
from export_engine.db.session import db_now, session_factory
from export_engine.lifecycle import creation, transitions
from export_engine.notifications import webhooks
from export_engine.notifications.dispatch import Notifier
from export_engine.notifications.ssrf import parse_networks
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests.api.conftest import FakeLauncher
from export_engine_tests.notify_peers import FakeTelegram, WebhookReceiver

pytestmark = pytest.mark.integration

LOOPBACK = parse_networks("127.0.0.0/8")
TELEGRAM_SECRET = "telegram-secret-token-for-tests"
STALE = timedelta(seconds=30)


@pytest.fixture
def sessions(settings):
    return session_factory(settings.database_url)


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    peer = WebhookReceiver().start()
    yield peer
    peer.stop()


@pytest.fixture
def notify_settings(settings, telegram):
    return settings.model_copy(
        update={
            "webhook_allowed_networks": "127.0.0.0/8",
            "webhook_retry_base_seconds": 0.2,
            "webhook_timeout_seconds": 3,
            "telegram_bot_token": SecretStr(telegram.token),
            "telegram_api_url": telegram.api_url,
            "telegram_webhook_secret": SecretStr(TELEGRAM_SECRET),
        }
    )


@pytest.fixture
def notifier(notify_settings, sessions, storage, catalog) -> Notifier:
    return Notifier(sessions, notify_settings, storage, catalog)


@pytest.fixture
def gateway(notify_settings) -> Iterator[TestClient]:
    with TestClient(create_app(notify_settings, launcher=FakeLauncher()), raise_server_exceptions=False) as c:
        yield c


def _auth(owner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(owner, secret=DEV_JWT_SECRET)}"}


def _owner() -> str:
    return f"notify-{uuid.uuid4()}"


def _spec(owner: str, day: int = 1) -> ExportSpec:
    return ExportSpec("transactions", date(2019, 1, day), date(2019, 1, 31), owner=owner)


def _pending(sessions, owner: str, day: int = 1) -> str:
    with sessions.begin() as session:
        return creation.create_pending(session, _spec(owner, day)).reference_id


def _complete(
    sessions, storage, owner: str, *, body: bytes = b"id,amount\n1,2.50\n", rows: int = 1234, day: int = 1
) -> str:
    """An export through PENDING → RUNNING → COMPLETED with a real object in the bucket."""
    ref = _pending(sessions, owner, day)
    key = f"exports/notify-tests/{ref}.csv"
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=body)
    with sessions.begin() as session:
        assert transitions.start(session, ref, f"run-{ref}", stale_after=STALE) is not None
    with sessions.begin() as session:
        assert transitions.complete(
            session,
            ref,
            f"run-{ref}",
            s3_key=key,
            row_count=rows,
            file_size_bytes=len(body),
            retention=timedelta(hours=24),
        )
    return ref


def _types(sessions, ref: str) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(
                select(ExportEvent.type).where(ExportEvent.reference_id == ref).order_by(ExportEvent.seq)
            )
        )


def _run(notifier: Notifier) -> None:
    """Fan out everything waiting (other tests' events too), then one delivery pass."""
    while notifier.fan_out():
        pass
    notifier.run_once()


def _deliveries(sessions, event_ids: list[str], channel: str) -> list[Delivery]:
    with sessions() as session:
        return list(
            session.scalars(
                select(Delivery)
                .where(Delivery.event_id.in_(event_ids), Delivery.channel == channel)
                .order_by(Delivery.id)
            )
        )


def _event_ids(sessions, ref: str, event_type: str) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(
                select(ExportEvent.id).where(ExportEvent.reference_id == ref, ExportEvent.type == event_type)
            )
        )


def _register(sessions, owner: str, url: str, types: list[str]) -> WebhookEndpoint:
    with sessions.begin() as session:
        return webhooks.register(session, owner=owner, url=url, event_types=types, allowed=LOOPBACK)


def _wait_due(sessions, delivery_id: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            row = session.get(Delivery, delivery_id)
            now = db_now(session)
            if row.status != "pending" or row.next_attempt_at <= now:
                return
        time.sleep(0.05)
    raise AssertionError(f"delivery {delivery_id} never became due")


# -- the outbox ----------------------------------------------------------------------------------------
def test_every_transition_writes_its_event_in_the_same_transaction(sessions, storage):
    owner = _owner()
    first = _complete(sessions, storage, owner)
    assert _types(sessions, first) == ["export.created", "export.running", "export.completed"]
    second = _complete(sessions, storage, owner)  # a newer file of the same key supersedes the first
    assert _types(sessions, first)[-1] == "export.superseded"
    with sessions.begin() as session:
        (payload,) = session.scalars(
            select(ExportEvent.payload).where(
                ExportEvent.reference_id == second, ExportEvent.type == "export.completed"
            )
        )
    assert (
        payload["reference_id"] == second
        and payload["row_count"] == 1234
        and payload["status"] == "COMPLETED"
    )
    assert (
        payload["dataset"] == "transactions"
        and payload["date_from"] == "2019-01-01"
        and payload["format"] == "csv"
    )

    failed = _pending(sessions, owner, day=2)
    with sessions.begin() as session:
        assert transitions.fail(session, failed, "source <gone>", run_id=None)
    assert _types(sessions, failed) == ["export.created", "export.failed"]
    canceled = _pending(sessions, owner, day=3)
    with sessions.begin() as session:
        assert transitions.cancel(session, canceled) is not None
    assert _types(sessions, canceled) == ["export.created", "export.canceled"]
    with sessions.begin() as session:
        key = session.get(Export, second).s3_key
        transitions.expire_object(session, key)
    assert _types(sessions, second)[-1] == "export.expired"

    # A transition rolled back leaves no event; one that loses its guard writes none.
    lost = _pending(sessions, owner, day=4)
    with sessions() as session:
        session.begin()
        assert transitions.start(session, lost, "run-x", stale_after=STALE) is not None
        session.rollback()
    with sessions.begin() as session:
        assert not transitions.fail(session, lost, "wrong run", run_id="someone-else")
    assert _types(sessions, lost) == ["export.created"]


def test_events_endpoint_pages_the_callers_events_only(sessions, storage, gateway):
    owner, other = _owner(), _owner()
    ref = _complete(sessions, storage, owner)
    _complete(sessions, storage, other)
    first = gateway.get("/events", params={"limit": 2}, headers=_auth(owner))
    assert first.status_code == 200, first.text
    page = first.json()
    assert [e["type"] for e in page["items"]] == ["export.created", "export.running"]
    assert page["has_more"] is True
    rest = gateway.get("/events", params={"cursor": page["next_cursor"]}, headers=_auth(owner)).json()
    assert [e["type"] for e in rest["items"]] == ["export.completed"] and rest["has_more"] is False
    assert rest["items"][0]["data"]["reference_id"] == ref and rest["items"][0]["id"].startswith("evt_")
    later = gateway.get("/events", params={"cursor": rest["next_cursor"]}, headers=_auth(owner)).json()
    assert later["items"] == [] and later["next_cursor"] == rest["next_cursor"]  # catch-up: nothing new
    only = gateway.get("/events", params={"type": "export.completed"}, headers=_auth(owner)).json()
    assert [e["type"] for e in only["items"]] == ["export.completed"]
    bad = gateway.get("/events", params={"cursor": "abc"}, headers=_auth(owner))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


def test_an_event_that_commits_after_a_later_one_is_not_skipped(sessions, gateway):
    """Review 2026-12-07 N4: a sequence value is taken at INSERT and seen at COMMIT. A client that read
    the later event (seq n+1) first and kept its cursor never saw event n. Now it is held back until
    every event before it has committed, and then served."""
    owner = _owner()
    slow, fast = _pending(sessions, owner, day=1), _pending(sessions, owner, day=2)
    caught_up = gateway.get("/events", headers=_auth(owner)).json()
    assert [e["type"] for e in caught_up["items"]] == ["export.created", "export.created"]

    early = sessions()  # takes its sequence value first, commits last
    early.begin()
    assert transitions.start(early, slow, "run-slow", stale_after=STALE) is not None
    with sessions.begin() as session:
        assert transitions.start(session, fast, "run-fast", stale_after=STALE) is not None
    seen = gateway.get("/events", params={"cursor": caught_up["next_cursor"]}, headers=_auth(owner)).json()
    early.commit()
    early.close()
    rest = gateway.get("/events", params={"cursor": seen["next_cursor"]}, headers=_auth(owner)).json()

    delivered = [e["data"]["reference_id"] for e in seen["items"] + rest["items"]]
    assert sorted(delivered) == sorted([slow, fast])  # each exactly once, none skipped


# -- webhooks ------------------------------------------------------------------------------------------
def test_a_webhook_is_signed_per_standard_webhooks_and_the_secret_shown_once(
    sessions, storage, gateway, notifier, receiver
):
    owner = _owner()
    created = gateway.post(
        "/webhooks",
        json={"url": receiver.url + "/hook", "events": ["export.completed"]},
        headers=_auth(owner),
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", endpoint["secret"])
    listed = gateway.get("/webhooks", headers=_auth(owner)).json()["items"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
    receiver.secret = endpoint["secret"]

    ref = _complete(sessions, storage, owner)
    _run(notifier)
    (got,) = receiver.received  # created and running are not subscribed
    assert got.verified and got.answered == 200
    assert got.headers["webhook-id"] == _event_ids(sessions, ref, "export.completed")[0]
    assert got.json["type"] == "export.completed" and got.json["data"]["reference_id"] == ref
    assert got.json["data"]["row_count"] == 1234 and got.json["data"]["owner"] == owner

    log = gateway.get(f"/webhooks/{endpoint['id']}/deliveries", headers=_auth(owner)).json()["items"]
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("delivered", 1, 200)]

    # Rotation: the new secret signs at once, the old one keeps signing through the overlap.
    rotated = gateway.post(f"/webhooks/{endpoint['id']}/rotate-secret", headers=_auth(owner)).json()
    assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_valid_until"]
    redelivered = gateway.post(
        f"/webhooks/{endpoint['id']}/deliveries/{log[0]['id']}/redeliver", headers=_auth(owner)
    )
    assert redelivered.status_code == 202 and redelivered.json()["status"] == "pending"
    _run(notifier)
    assert len(receiver.received) == 2 and receiver.received[1].verified  # old secret: still accepted
    receiver.secret = rotated["secret"]
    assert len(receiver.received[1].headers["webhook-signature"].split(" ")) == 2
    from standardwebhooks import Webhook

    Webhook(rotated["secret"]).verify(receiver.received[1].body, receiver.received[1].headers)
    assert receiver.received[1].headers["webhook-id"] == got.headers["webhook-id"]  # the same event id

    assert gateway.get(f"/webhooks/{endpoint['id']}/deliveries", headers=_auth(_owner())).status_code == 404
    assert gateway.delete(f"/webhooks/{endpoint['id']}", headers=_auth(owner)).status_code == 204
    assert gateway.get("/webhooks", headers=_auth(owner)).json()["items"] == []


def test_a_receiver_down_for_a_while_gets_the_event_once_it_is_back(sessions, storage, notifier, receiver):
    owner = _owner()
    endpoint = _register(sessions, owner, receiver.url, ["export.completed"])
    receiver.secret = endpoint.secret
    receiver.stop()  # connection refused from now on
    ref = _complete(sessions, storage, owner)
    event_ids = _event_ids(sessions, ref, "export.completed")
    for expected_attempts in (1, 2):
        _run(notifier)
        (delivery,) = _deliveries(sessions, event_ids, "webhook")
        assert (delivery.status, delivery.attempts) == ("pending", expected_attempts)
        assert "ConnectError" in (delivery.last_error or "")
        _wait_due(sessions, delivery.id)
    receiver.start()
    _run(notifier)
    (delivery,) = _deliveries(sessions, event_ids, "webhook")
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    (got,) = receiver.received
    assert got.verified and got.headers["webhook-id"] == event_ids[0]
    _run(notifier)
    assert len(receiver.received) == 1  # delivered once: nothing more is sent


def test_a_retried_delivery_carries_the_same_id_and_body(sessions, storage, notifier, receiver):
    owner = _owner()
    endpoint = _register(sessions, owner, receiver.url, ["export.completed"])
    receiver.secret = endpoint.secret
    receiver.answers = [503, 429]
    ref = _complete(sessions, storage, owner)
    event_ids = _event_ids(sessions, ref, "export.completed")
    for _ in range(3):
        _run(notifier)
        (delivery,) = _deliveries(sessions, event_ids, "webhook")
        _wait_due(sessions, delivery.id)
    assert [r.answered for r in receiver.received] == [503, 429, 200]
    assert {r.headers["webhook-id"] for r in receiver.received} == {event_ids[0]}
    assert len({r.body for r in receiver.received}) == 1 and all(r.verified for r in receiver.received)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)


def test_a_4xx_stops_and_running_out_of_time_marks_the_endpoint_failing(
    sessions, storage, notifier, receiver
):
    owner = _owner()
    endpoint = _register(sessions, owner, receiver.url, ["export.completed", "export.failed"])
    receiver.secret = endpoint.secret
    receiver.answers = [410]
    ref = _complete(sessions, storage, owner)
    _run(notifier)
    (delivery,) = _deliveries(sessions, _event_ids(sessions, ref, "export.completed"), "webhook")
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, 410)
    with sessions() as session:
        assert session.get(WebhookEndpoint, endpoint.id).failing_since is None  # the receiver said no

    receiver.stop()
    short = Notifier(
        notifier.sessions,
        notifier.settings.model_copy(update={"webhook_retry_window_hours": 1e-6}),
        notifier.storage,
        notifier.catalog,
    )
    failed = _pending(sessions, owner, day=5)
    with sessions.begin() as session:
        transitions.fail(session, failed, "boom", run_id=None)
    _run(short)
    (delivery,) = _deliveries(sessions, _event_ids(sessions, failed, "export.failed"), "webhook")
    assert delivery.status == "failed" and "ConnectError" in delivery.last_error
    with sessions() as session:
        assert session.get(WebhookEndpoint, endpoint.id).failing_since is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_a_private_address_is_refused(gateway, url):
    answer = gateway.post(
        "/webhooks", json={"url": url, "events": ["export.completed"]}, headers=_auth(_owner())
    )
    assert answer.status_code == 422, answer.text
    assert "only public addresses are accepted" in answer.json()["detail"]
    assert answer.json()["errors"][0]["field"] == "url"


def test_loopback_only_where_the_allow_list_says_so(gateway, settings):
    """This gateway allows 127.0.0.0/8 (like `make run`); production's empty list refuses it."""
    url = {"url": "http://127.0.0.1:9/hook", "events": ["export.completed"]}
    assert gateway.post("/webhooks", json=url, headers=_auth(_owner())).status_code == 201
    with TestClient(create_app(settings, launcher=FakeLauncher()), raise_server_exceptions=False) as strict:
        refused = strict.post("/webhooks", json=url, headers=_auth(_owner()))
    assert refused.status_code == 422 and "a loopback address" in refused.json()["detail"]


def test_a_non_http_url_and_an_unknown_event_type_are_refused(gateway):
    ftp = gateway.post(
        "/webhooks",
        json={"url": "ftp://example.com/x", "events": ["export.completed"]},
        headers=_auth(_owner()),
    )
    assert ftp.status_code == 422 and "only http and https" in ftp.json()["detail"]
    typo = gateway.post(
        "/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["export.done"]}, headers=_auth(_owner())
    )
    assert typo.status_code == 422 and "export.completed" in typo.json()["detail"]


def test_redirects_are_not_followed(sessions, storage, notifier, receiver):
    owner = _owner()
    endpoint = _register(sessions, owner, receiver.url, ["export.completed"])
    receiver.secret = endpoint.secret
    receiver.answers = [302]
    ref = _complete(sessions, storage, owner)
    _run(notifier)
    (delivery,) = _deliveries(sessions, _event_ids(sessions, ref, "export.completed"), "webhook")
    assert delivery.status == "failed" and "redirects are not followed" in delivery.last_error
    assert len(receiver.received) == 1


# -- Telegram ------------------------------------------------------------------------------------------
def _link(gateway, telegram: FakeTelegram, owner: str, chat_id: int) -> None:
    answer = gateway.post("/notifications/telegram/link", headers=_auth(owner))
    assert answer.status_code == 200, answer.text
    link = answer.json()["link"]
    code = answer.json()["code"]
    assert link == f"https://t.me/{telegram.username}?start={code}"
    update = telegram.start_update(chat_id, f"/start {code}")
    ok = gateway.post(
        "/notifications/telegram/webhook",
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
    )
    assert ok.status_code == 200, ok.text


def test_telegram_completion_message_has_the_seed_text_and_a_link_that_downloads(
    sessions, storage, gateway, notifier, telegram
):
    owner, chat = _owner(), 424242
    _link(gateway, telegram, owner, chat)
    assert gateway.get("/notifications/telegram", headers=_auth(owner)).json()["linked"] is True
    assert telegram.messages[-1]["chat_id"] == str(chat) and "Connected" in telegram.messages[-1]["text"]
    telegram.messages.clear()

    body = b"id,amount\n" + b"".join(b"%d,1.00\n" % i for i in range(1234))
    ref = _complete(sessions, storage, owner, body=body, rows=1234)
    _run(notifier)
    _run(notifier)
    (message,) = telegram.messages
    assert message["chat_id"] == str(chat) and message["parse_mode"] == "HTML"
    url = re.search(r'<a href="([^"]+)">Download CSV</a>', message["text"])[1]
    expected = (
        "<b>Export Ready</b>\n\n"
        "Your <b>Transactions</b> export is ready.\n"
        "Rows: 1,234\n\n"
        f'<a href="{url}">Download CSV</a>\n\n'
        "<i>Link expires in 24 hours</i>"
    )
    assert message["text"] == expected
    import html

    downloaded = httpx.get(html.unescape(url), timeout=30)
    assert downloaded.status_code == 200 and downloaded.content == body
    (delivery,) = _deliveries(sessions, _event_ids(sessions, ref, "export.completed"), "telegram")
    assert (delivery.status, delivery.attempts) == ("delivered", 1)


def test_telegram_failure_message_escapes_the_reason(sessions, gateway, notifier, telegram):
    owner = _owner()
    _link(gateway, telegram, owner, 5150)
    telegram.messages.clear()
    ref = _pending(sessions, owner)
    with sessions.begin() as session:
        transitions.fail(session, ref, "source said <b>no</b> & stopped", run_id=None)
    _run(notifier)
    (message,) = telegram.messages
    assert message["text"] == (
        "<b>Export Failed</b>\n\nYour <b>Transactions</b> export failed.\n"
        "Reason: source said &lt;b&gt;no&lt;/b&gt; &amp; stopped"
    )


def test_telegram_429_retry_after_and_5xx_are_retried_and_one_message_lands(
    sessions, storage, gateway, notifier, telegram
):
    owner = _owner()
    _link(gateway, telegram, owner, 777)
    telegram.messages.clear()
    telegram.fail_next(429, retry_after=2)
    telegram.fail_next(502)
    ref = _complete(sessions, storage, owner)
    event_ids = _event_ids(sessions, ref, "export.completed")
    _run(notifier)
    (delivery,) = _deliveries(sessions, event_ids, "telegram")
    with sessions() as session:
        wait = (delivery.next_attempt_at - db_now(session)).total_seconds()
    assert delivery.status == "pending" and delivery.last_status_code == 429
    assert 1.0 < wait <= 2.0  # Telegram's retry_after, not our backoff (0.2 s here)
    for _ in range(2):
        _wait_due(sessions, delivery.id)
        _run(notifier)
        (delivery,) = _deliveries(sessions, event_ids, "telegram")
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert len(telegram.messages) == 1 and "Export Ready" in telegram.messages[0]["text"]


def test_an_unlinked_owner_gets_nothing(sessions, storage, notifier, telegram):
    owner = _owner()
    ref = _complete(sessions, storage, owner)
    _run(notifier)
    assert _deliveries(sessions, _event_ids(sessions, ref, "export.completed"), "telegram") == []
    assert telegram.messages == []


def test_a_wrong_telegram_secret_token_is_refused_and_links_nothing(gateway, telegram, sessions):
    owner = _owner()
    code = gateway.post("/notifications/telegram/link", headers=_auth(owner)).json()["code"]
    update = telegram.start_update(99, f"/start {code}")
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        answer = gateway.post("/notifications/telegram/webhook", json=update, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["detail"] == "wrong or missing X-Telegram-Bot-Api-Secret-Token"
    assert gateway.get("/notifications/telegram", headers=_auth(owner)).json()["linked"] is False
    assert telegram.messages == []


def test_unlink_stops_messages(sessions, storage, gateway, notifier, telegram):
    owner = _owner()
    _link(gateway, telegram, owner, 31337)
    assert gateway.delete("/notifications/telegram/link", headers=_auth(owner)).status_code == 204
    assert gateway.delete("/notifications/telegram/link", headers=_auth(owner)).status_code == 404
    telegram.messages.clear()
    _complete(sessions, storage, owner)
    _run(notifier)
    assert telegram.messages == []


def test_telegram_off_says_so(settings):
    with TestClient(create_app(settings, launcher=FakeLauncher()), raise_server_exceptions=False) as client:
        answer = client.post("/notifications/telegram/link", headers=_auth(_owner()))
        assert answer.status_code == 409 and "TELEGRAM_BOT_TOKEN is unset" in answer.json()["detail"]
        assert client.get("/notifications/telegram", headers=_auth(_owner())).json()["enabled"] is False
        update = client.post("/notifications/telegram/webhook", json={"update_id": 1})
        assert update.status_code == 403 and "TELEGRAM_WEBHOOK_SECRET is unset" in update.json()["detail"]
