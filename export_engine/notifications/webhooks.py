"""Webhook endpoints an owner registers, their delivery log, and one signed delivery attempt.

Every function takes the owner: an endpoint or delivery of someone else is `UnknownTarget`, exactly
like a missing one. The secret is returned once, by `register` and `rotate`; listings never show it.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from export_engine.db.events import EVENT_TYPES, envelope
from export_engine.db.models import Delivery, ExportEvent, WebhookEndpoint
from export_engine.notifications import signing
from export_engine.notifications.deadline import Answer, DeadlinePassed, post_within
from export_engine.notifications.errors import NotificationError, UnknownTarget, UnsafeUrl
from export_engine.notifications.ssrf import IPAddress, IPNetwork, Pinned, check_url, pin

MAX_ENDPOINTS_PER_OWNER = 20
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Attempt:
    """What one send achieved: delivered, worth retrying (timeouts, 5xx, 429), or refused for good."""

    delivered: bool
    retry: bool
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # the peer said when (429 Retry-After / Telegram's retry_after)


def check_event_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if not types or unknown:
        raise NotificationError(
            f"events: unknown event type(s) {', '.join(unknown) or '(none given)'}; "
            f"valid: {', '.join(EVENT_TYPES)}"
        )
    return [t for t in EVENT_TYPES if t in types]  # canonical order, no duplicates


def register(
    session: Session, *, owner: str, url: str, event_types: list[str], allowed: list[IPNetwork]
) -> WebhookEndpoint:
    check_url(url, allowed)
    types = check_event_types(event_types)
    count = (
        session.scalar(
            select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.owner == owner)
        )
        or 0
    )
    if count >= MAX_ENDPOINTS_PER_OWNER:
        raise NotificationError(f"url: at most {MAX_ENDPOINTS_PER_OWNER} webhook endpoints per owner")
    endpoint = WebhookEndpoint(
        id=f"ep_{uuid.uuid4().hex}", owner=owner, url=url, events=types, secret=signing.new_secret()
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def list_endpoints(session: Session, owner: str) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.owner == owner).order_by(WebhookEndpoint.created_at)
        )
    )


def get_endpoint(session: Session, owner: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.owner != owner:
        raise UnknownTarget(f"webhook endpoint {endpoint_id!r} not found")
    return endpoint


def remove(session: Session, owner: str, endpoint_id: str) -> None:
    endpoint = get_endpoint(session, owner, endpoint_id)
    session.execute(delete(Delivery).where(Delivery.channel == "webhook", Delivery.target == endpoint.id))
    session.delete(endpoint)


def rotate(session: Session, owner: str, endpoint_id: str, *, overlap: timedelta) -> WebhookEndpoint:
    """A new secret signs from now on; the old one also signs for `overlap`, so receivers can switch."""
    endpoint = get_endpoint(session, owner, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = func.now() + overlap
    endpoint.secret = signing.new_secret()
    session.flush()
    session.refresh(endpoint)
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    secrets = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def delivery_log(
    session: Session, owner: str, endpoint_id: str, *, limit: int, before_id: int | None = None
) -> list[tuple[Delivery, ExportEvent]]:
    """The endpoint's deliveries, newest first, with their events."""
    endpoint = get_endpoint(session, owner, endpoint_id)
    query = (
        select(Delivery, ExportEvent)
        .join(ExportEvent, ExportEvent.id == Delivery.event_id)
        .where(Delivery.channel == "webhook", Delivery.target == endpoint.id)
    )
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    return [(d, e) for d, e in session.execute(query.order_by(Delivery.id.desc()).limit(limit))]


def redeliver(session: Session, owner: str, endpoint_id: str, delivery_id: int) -> Delivery:
    """Send again now, with the same webhook-id, in a fresh retry window."""
    endpoint = get_endpoint(session, owner, endpoint_id)
    delivery = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.channel == "webhook", Delivery.target == endpoint.id)
        .values(status="pending", next_attempt_at=func.now(), created_at=func.now(), attempts=0)
        .returning(Delivery)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if delivery is None:
        raise UnknownTarget(f"delivery {delivery_id} of webhook endpoint {endpoint_id!r} not found")
    return delivery


def body_of(event: ExportEvent) -> bytes:
    """Standard Webhooks' payload shape: `{"type", "timestamp", "data"}` (the reference id in `data`)."""
    message = envelope(event)
    return json.dumps(
        {"type": message["type"], "timestamp": message["timestamp"], "data": message["data"]},
        separators=(",", ":"),
    ).encode()


def send(
    client: httpx.Client,
    endpoint: WebhookEndpoint,
    event: ExportEvent,
    *,
    allowed: list[IPNetwork],
    now: datetime,
    timeout: float,
) -> Attempt:
    """One POST; never raises for the peer's behaviour. The webhook-id is the event id on every attempt."""
    try:
        addresses = check_url(endpoint.url, allowed)  # again: the name may point elsewhere by now
    except UnsafeUrl as exc:
        return Attempt(delivered=False, retry=False, error=str(exc))
    body = body_of(event)
    headers = signing.headers(event.id, int(time.time()), body, signing_secrets(endpoint, now))
    try:
        response = _post_pinned(client, endpoint.url, addresses, body, headers, timeout)
    except DeadlinePassed as exc:
        return Attempt(delivered=False, retry=True, error=f"{exc} (WEBHOOK_TIMEOUT_SECONDS)")
    except httpx.HTTPError as exc:
        return Attempt(delivered=False, retry=True, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
    code = response.status_code
    if 200 <= code < 300:
        return Attempt(delivered=True, retry=False, status_code=code)
    error = f"HTTP {code}: {response.text[:200]}"
    if code == 429 or code >= 500:
        return Attempt(
            delivered=False,
            retry=True,
            status_code=code,
            error=error,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    if 300 <= code < 400:
        error = f"HTTP {code}: redirects are not followed ({response.headers.get('location', '')})"
    return Attempt(delivered=False, retry=False, status_code=code, error=error[:MAX_ERROR_CHARS])


def _post_pinned(
    client: httpx.Client,
    url: str,
    addresses: list[IPAddress],
    body: bytes,
    headers: dict[str, str],
    timeout: float,
) -> Answer:
    """POST to the checked addresses only (never a second DNS lookup), in order, as a plain connect
    would: the next one only when the previous refused the connection.

    Through an egress proxy (HTTP(S)_PROXY, which httpx honours) the proxy resolves the name and a
    pinned https URL would fail its certificate check at the tunnel: there the URL goes as it is, and
    the proxy's egress policy is what keeps internal addresses out."""
    if _proxied(client, url):
        return _post_to(client, Pinned(httpx.URL(url), {}), body, headers, timeout)
    for address in addresses[:-1]:
        try:
            return _post_to(client, pin(url, address), body, headers, timeout)
        except httpx.ConnectError:
            continue
    return _post_to(client, pin(url, addresses[-1]), body, headers, timeout)


def _proxied(client: httpx.Client, url: str) -> bool:
    """Whether httpx will send `url` through a proxy from the environment (the rules it applies)."""
    if not client.trust_env:
        return False
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def _post_to(
    client: httpx.Client, target: Pinned, body: bytes, headers: dict[str, str], timeout: float
) -> Answer:
    """The whole attempt within `timeout` seconds, and at most a few KiB of the answer read (N3)."""
    return post_within(
        client,
        target.url,
        content=body,
        headers={**headers, **target.headers},
        extensions=target.extensions,
        seconds=timeout,
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
