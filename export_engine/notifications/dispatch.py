"""From the outbox to the receivers, at least once, never inside an export's transaction.

1. **Fan out.** Undispatched events (`dispatched_at IS NULL`, claimed with `FOR UPDATE SKIP LOCKED`)
   become one `notification_deliveries` row per subscribed webhook endpoint, plus one per linked
   Telegram chat for `export.completed` / `export.failed`, in one transaction with `dispatched_at`.
2. **Deliver.** Due deliveries are claimed with a lease (`next_attempt_at` moved past the attempt's
   timeout, `attempts + 1`), sent outside any transaction, then recorded: delivered; retried at
   `base × 2^(attempt-1)` ±20 % (capped at 1 h, or the peer's Retry-After / retry_after) while the
   retry window lasts; otherwise failed (a webhook endpoint is then marked failing). A 4xx stops.

A sender that dies mid-attempt loses only its lease: the delivery is due again when it runs out, so a
receiver may see an event twice, always with the same id. `Notifier.run_for` is what the sensor runs.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from export_engine.core.catalog import Catalog, load_catalog
from export_engine.db.models import Delivery, Export, ExportEvent, WebhookEndpoint
from export_engine.db.session import session_factory
from export_engine.delivery.bucket import S3BucketMethods, S3Storage
from export_engine.notifications import messages, outbox, telegram, webhooks
from export_engine.notifications.ssrf import parse_networks
from export_engine.notifications.webhooks import Attempt
from export_engine.settings import Settings

log = logging.getLogger(__name__)

Send = Attempt | Callable[[], Attempt]  # decided already, or the call to make outside the transaction

MAX_DELAY_SECONDS = 3600.0
PARALLEL_SENDS = 8  # deliveries in flight at once per sender
JITTER = 0.2


def retry_delay(attempt: int, base_seconds: float) -> float:
    """Seconds before attempt `attempt + 1`: exponential with ±20 % jitter, at most an hour."""
    delay = min(base_seconds * 2 ** max(0, attempt - 1), MAX_DELAY_SECONDS)
    return delay * random.uniform(1 - JITTER, 1 + JITTER)


@dataclass
class Pass:
    """What one pass did (the sensor reports it)."""

    fanned_out: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fanned_out or self.delivered or self.retrying or self.failed)


class Notifier:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        storage: S3BucketMethods,
        catalog: Catalog,
        client: httpx.Client | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.storage = storage
        self.catalog = catalog
        self.client = client or httpx.Client(headers={"user-agent": "export-engine-webhooks/1"})
        self.allowed = parse_networks(settings.webhook_allowed_networks)
        token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
        self.bot = (
            telegram.TelegramBot(settings.telegram_api_url, token, self.client)
            if settings.telegram_enabled
            else None
        )
        self.lease = timedelta(seconds=settings.webhook_timeout_seconds + 30)
        self._pool = ThreadPoolExecutor(PARALLEL_SENDS, thread_name_prefix="notify")

    @classmethod
    def from_settings(cls, settings: Settings, storage: S3BucketMethods | None = None) -> Notifier:
        return cls(
            session_factory(settings.database_url),
            settings,
            storage or S3Storage.from_settings(settings),
            load_catalog(settings.catalog_path),
        )

    # -- the loop -------------------------------------------------------------------------------------
    def run_for(self, seconds: float, idle_sleep: float = 0.5) -> Pass:
        """Passes until `seconds` have gone by, sleeping `idle_sleep` after a pass with nothing to do."""
        total = Pass()
        deadline = time.monotonic() + seconds
        while True:
            done = self.run_once()
            for name in ("fanned_out", "delivered", "retrying", "failed"):
                setattr(total, name, getattr(total, name) + getattr(done, name))
            total.errors += done.errors
            if time.monotonic() >= deadline:
                return total
            if not done:
                time.sleep(idle_sleep)

    def run_once(self) -> Pass:
        """One pass: Telegram updates (long polling), fan-out, then one batch of due deliveries sent
        side by side, so a receiver that hangs until its timeout delays no other (a pass lasts at most
        about one timeout, well inside Dagster's 60 s sensor limit)."""
        result = Pass()
        if self.bot is not None and self.settings.telegram_webhook_secret is None:
            self._poll_telegram(result)
        result.fanned_out = self.fan_out()
        due = self._claim_due(limit=PARALLEL_SENDS * 2)
        for outcome, error in self._pool.map(self._deliver, due):
            setattr(result, outcome, getattr(result, outcome) + 1)
            if error:
                result.errors.append(error)
        return result

    # -- 1. fan out ----------------------------------------------------------------------------------
    def fan_out(self, limit: int = 200) -> int:
        return outbox.fan_out(self.sessions, telegram=self.bot is not None, limit=limit)

    # -- 2. deliver ----------------------------------------------------------------------------------
    def _claim_due(self, limit: int = 50) -> list[Delivery]:
        return outbox.claim_due(self.sessions, self.lease, limit)

    def _deliver(self, delivery: Delivery) -> tuple[str, str | None]:
        """Send one claimed delivery and record the outcome; returns (Pass counter, unexpected error).

        What to send is read in a short transaction that ends before the peer is called: a slow peer
        must not keep a transaction (and a pooled connection) open for its whole answer (N3)."""
        unexpected = None
        try:
            with self.sessions() as session:
                event = session.scalar(select(ExportEvent).where(ExportEvent.id == delivery.event_id))
                now: datetime = session.execute(select(func.now())).scalar_one()
                if event is None:
                    send: Send = Attempt(delivered=False, retry=False, error="the event no longer exists")
                elif delivery.channel == "webhook":
                    send = self._webhook_send(session, delivery, event, now)
                else:
                    send = self._telegram_send(session, delivery, event, now)
            attempt = send if isinstance(send, Attempt) else send()
        except Exception as exc:  # a bug or an outage of ours: retried like a peer's failure
            log.exception("delivery %s failed unexpectedly", delivery.id)
            unexpected = f"{type(exc).__name__}: {exc}"[:500]
            attempt = Attempt(delivered=False, retry=True, error=unexpected)
        return self._record(delivery, attempt), unexpected

    def _webhook_send(self, session: Session, delivery: Delivery, event: ExportEvent, now: datetime) -> Send:
        endpoint = session.get(WebhookEndpoint, delivery.target)
        if endpoint is None:
            return Attempt(delivered=False, retry=False, error="the endpoint was deleted")
        timeout = self.settings.webhook_timeout_seconds
        return lambda: webhooks.send(
            self.client, endpoint, event, allowed=self.allowed, now=now, timeout=timeout
        )

    def _telegram_send(self, session: Session, delivery: Delivery, event: ExportEvent, now: datetime) -> Send:
        bot = self.bot
        if bot is None:
            return Attempt(delivered=False, retry=False, error="Telegram is off (TELEGRAM_BOT_TOKEN unset)")
        if telegram.chat_of(session, event.owner) != delivery.target:
            return Attempt(delivered=False, retry=False, error="the chat was unlinked")
        export = session.get(Export, event.reference_id)
        if export is None:
            return Attempt(delivered=False, retry=False, error="the export no longer exists")
        text = messages.telegram_text(
            export,
            event.type,
            catalog=self.catalog,
            storage=self.storage,
            presign_ttl_seconds=self.settings.presign_ttl_seconds,
            now=now,
        )
        if text is None:
            return Attempt(delivered=False, retry=False, error="the file is gone; nothing to link to")
        return lambda: bot.send_message(delivery.target, text)

    def _record(self, delivery: Delivery, attempt: Attempt) -> str:
        values: dict[str, object] = {"last_status_code": attempt.status_code, "last_error": attempt.error}
        with self.sessions.begin() as session:
            if attempt.delivered:
                values.update(status="delivered", delivered_at=func.now(), last_error=None)
                outcome = "delivered"
            else:
                window = timedelta(hours=self.settings.webhook_retry_window_hours)
                delay = attempt.retry_after
                if delay is None:
                    delay = retry_delay(delivery.attempts, self.settings.webhook_retry_base_seconds)
                now = session.execute(select(func.now())).scalar_one()
                if attempt.retry and now + timedelta(seconds=delay) <= delivery.created_at + window:
                    values["next_attempt_at"] = func.now() + timedelta(seconds=delay)
                    outcome = "retrying"
                else:
                    values["status"] = "failed"
                    outcome = "failed"
            # Only while this sender's lease holds: after it ran out another sender claimed the
            # delivery (attempts moved on), and its outcome is the one to keep (N3).
            recorded = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery.id,
                    Delivery.attempts == delivery.attempts,
                    Delivery.status == "pending",
                )
                .values(**values)
                .returning(Delivery.id)
            ).first()
            if recorded is None:
                log.warning(
                    "delivery %s: attempt %d ended after its lease; not recorded",
                    delivery.id,
                    delivery.attempts,
                )
                return outcome
            if delivery.channel == "webhook":
                failing = values.get("status") == "failed" and attempt.retry  # out of time, not a 4xx
                if attempt.delivered or failing:
                    session.execute(
                        update(WebhookEndpoint)
                        .where(WebhookEndpoint.id == delivery.target)
                        .values(
                            failing_since=None
                            if attempt.delivered
                            else func.coalesce(WebhookEndpoint.failing_since, func.now())
                        )
                    )
        log.info(
            "delivery %s (%s %s) attempt %d: %s",
            delivery.id,
            delivery.channel,
            delivery.event_id,
            delivery.attempts,
            "delivered" if attempt.delivered else attempt.error,
        )
        return outcome

    # -- Telegram updates by long polling (when no webhook secret is set) -----------------------------
    def _poll_telegram(self, result: Pass) -> None:
        assert self.bot is not None
        try:
            with self.sessions.begin() as session:
                offset = telegram.updates_offset(session)
                updates = self.bot.get_updates(offset)
                for update_ in updates:
                    self.handle_update(session, update_)
                    offset = max(offset, int(update_["update_id"]) + 1)
                telegram.save_updates_offset(session, offset)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            result.errors.append(f"getUpdates: {type(exc).__name__}")

    def handle_update(self, session: Session, update_: dict) -> None:
        reply = telegram.link_from_update(session, update_)
        if reply is not None and self.bot is not None:
            self.bot.send_message(*reply)  # best effort: the link is stored either way
