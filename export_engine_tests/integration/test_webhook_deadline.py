"""One tenant's slow webhook receiver must not hold a sender (review 2026-12-07 N3).

The receiver here trickles a valid answer, one byte every half second: each read succeeds well inside
the per-read timeout, so before the fix the attempt lasted as long as the peer liked (and ended
"delivered"), while its sender thread kept a database transaction open. Now the whole attempt is
bounded by `WEBHOOK_TIMEOUT_SECONDS`, and the transaction is closed before the request is sent.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date

import psycopg2
import pytest
from sqlalchemy import select

from devstack.processes import free_port
from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Delivery, ExportEvent
from export_engine.db.session import session_factory
from export_engine.lifecycle import creation
from export_engine.notifications import webhooks
from export_engine.notifications.dispatch import Notifier
from export_engine.notifications.ssrf import parse_networks

pytestmark = pytest.mark.integration
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"  # 58 bytes: ~29 s trickled
IDLE_IN_TRANSACTION = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
)


class TricklingReceiver:
    """Reads the request, then answers one byte every `pause` seconds; notes what the export DB looked
    like when the request arrived."""

    def __init__(self, database_url: str, pause: float = 0.5) -> None:
        self.port, self.pause, self.database_url = free_port(), pause, database_url
        self.idle_in_transaction_on_arrival: int | None = None
        self.bytes_sent = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                with psycopg2.connect(self.database_url) as db, db.cursor() as cur:
                    cur.execute(IDLE_IN_TRANSACTION)
                    self.idle_in_transaction_on_arrival = cur.fetchone()[0]
                try:
                    for byte in ANSWER:
                        conn.sendall(bytes([byte]))
                        self.bytes_sent += 1
                        time.sleep(self.pause)
                except OSError:  # the sender hung up: what it should do
                    pass

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def receiver(settings) -> Iterator[TricklingReceiver]:
    peer = TricklingReceiver(settings.database_url)
    yield peer
    peer.close()


def test_a_trickling_receiver_is_cut_off_at_the_deadline_without_a_transaction_held(
    settings, storage, catalog, receiver
):
    notify_settings = settings.model_copy(
        update={"webhook_allowed_networks": "127.0.0.0/8", "webhook_timeout_seconds": 3}
    )
    sessions = session_factory(settings.database_url)
    owner = f"trickle-{uuid.uuid4()}"
    with sessions.begin() as session:
        webhooks.register(
            session,
            owner=owner,
            url=f"http://127.0.0.1:{receiver.port}/hook",
            event_types=["export.created"],
            allowed=parse_networks("127.0.0.0/8"),
        )
        ref = creation.create_pending(
            session, ExportSpec("transactions", date(2019, 1, 1), date(2019, 1, 31), owner=owner)
        ).reference_id
    notifier = Notifier(sessions, notify_settings, storage, catalog)
    while notifier.fan_out():
        pass

    notifier.run_once()

    with sessions() as session:
        event_id = session.scalar(select(ExportEvent.id).where(ExportEvent.reference_id == ref))
        delivery = session.scalar(select(Delivery).where(Delivery.event_id == event_id))
    assert (delivery.status, delivery.attempts) == ("pending", 1)  # retried later, not delivered
    assert delivery.last_error == "no complete answer within 3 s (WEBHOOK_TIMEOUT_SECONDS)"
    assert receiver.bytes_sent < len(ANSWER)  # the answer never got through
    assert receiver.idle_in_transaction_on_arrival == 0  # nobody waited on the peer inside a transaction
