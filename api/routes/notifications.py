"""`/events`, `/webhooks` and `/notifications/telegram`: parse, call one function, shape the answer.

The work lives in `export_engine.db.events` and `export_engine.notifications` (plain code, no Dagster);
sending is the notification sensor's job, never the gateway's (except the bot's reply to `/start`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, status
from fastapi.security import APIKeyHeader
from sqlalchemy import select

from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.errors import ErrorBody, FeatureOff, Forbidden, InvalidRequest, NotFound, WrongSecretToken
from api.notification_schemas import (
    DeliveryPage,
    DeliveryView,
    EventPage,
    EventType,
    EventView,
    TelegramLinkCreated,
    TelegramStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookView,
)
from api.openapi import bearer, errors
from export_engine.db import events
from export_engine.db.models import Delivery, ExportEvent, WebhookEndpoint
from export_engine.notifications import telegram, webhooks
from export_engine.notifications.errors import NotificationError, UnknownTarget
from export_engine.notifications.ssrf import parse_networks
from export_engine.settings import Settings

router = APIRouter(tags=["notifications"], dependencies=[Depends(bearer)])
telegram_router = APIRouter(tags=["notifications"])
telegram_secret = APIKeyHeader(
    name="X-Telegram-Bot-Api-Secret-Token",
    auto_error=False,
    scheme_name="telegramSecretToken",
    description="TELEGRAM_WEBHOOK_SECRET, as given to Telegram's setWebhook (`secret_token`)",
)


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except UnknownTarget as exc:
        raise NotFound(str(exc)) from exc
    except NotificationError as exc:
        raise InvalidRequest(str(exc)) from exc


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise InvalidRequest("cursor: not a cursor this API returned")
    return int(value)


# -- events ----------------------------------------------------------------------------------------
@router.get("/events", response_model=EventPage, responses=errors(401, 422, 503))
def list_events(
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=40, description="`next_cursor` of the last page")] = None,
    type: Annotated[list[EventType] | None, Query(description="only these event types")] = None,
) -> EventPage:
    if (after := events.position_from_cursor(session, cursor)) is None:
        raise InvalidRequest("cursor: not a cursor this API returned")
    rows = events.list_for_owner(session, principal.subject, after=after, limit=limit + 1, types=type)
    page = rows[:limit]
    return EventPage(
        items=[EventView(**events.envelope(e)) for e in page],
        next_cursor=events.cursor_of(page[-1] if page else after),
        has_more=len(rows) > limit,
    )


# -- webhooks ----------------------------------------------------------------------------------------
def _view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "created_at": endpoint.created_at,
        "failing_since": endpoint.failing_since,
        "previous_secret_valid_until": endpoint.previous_secret_until,
    }


@router.post(
    "/webhooks",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    responses=errors(401, 422, 503),
)
def create_webhook(
    body: WebhookCreate, session: SessionDep, principal: PrincipalDep, settings: SettingsDep
) -> WebhookCreated:
    """Register an endpoint; the answer carries its signing secret, shown this once."""
    with _mapped(), session.begin():
        endpoint = webhooks.register(
            session,
            owner=principal.subject,
            url=body.url,
            event_types=list(body.events),
            allowed=parse_networks(settings.webhook_allowed_networks),
        )
        return WebhookCreated(**_view(endpoint), secret=endpoint.secret)


@router.get("/webhooks", response_model=WebhookList, responses=errors(401, 503))
def list_webhooks(session: SessionDep, principal: PrincipalDep) -> WebhookList:
    return WebhookList(
        items=[WebhookView(**_view(e)) for e in webhooks.list_endpoints(session, principal.subject)]
    )


@router.delete(
    "/webhooks/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 404, 422, 503)
)
def delete_webhook(endpoint_id: str, session: SessionDep, principal: PrincipalDep) -> Response:
    with _mapped(), session.begin():
        webhooks.remove(session, principal.subject, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    response_model=WebhookCreated,
    responses=errors(401, 404, 422, 503),
)
def rotate_webhook_secret(
    endpoint_id: str, session: SessionDep, principal: PrincipalDep, settings: SettingsDep
) -> WebhookCreated:
    """A new secret, shown once; the old one keeps signing for WEBHOOK_SECRET_OVERLAP_HOURS."""
    overlap = timedelta(hours=settings.webhook_secret_overlap_hours)
    with _mapped(), session.begin():
        endpoint = webhooks.rotate(session, principal.subject, endpoint_id, overlap=overlap)
        return WebhookCreated(**_view(endpoint), secret=endpoint.secret)


def _delivery(delivery: Delivery, event: ExportEvent) -> DeliveryView:
    return DeliveryView(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=event.type,
        reference_id=event.reference_id,
        status=delivery.status,  # type: ignore[arg-type]
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


@router.get(
    "/webhooks/{endpoint_id}/deliveries", response_model=DeliveryPage, responses=errors(401, 404, 422, 503)
)
def list_deliveries(
    endpoint_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> DeliveryPage:
    """The endpoint's delivery log, newest first: status, attempts, the last answer or error."""
    with _mapped():
        rows = webhooks.delivery_log(
            session, principal.subject, endpoint_id, limit=limit + 1, before_id=_cursor(cursor)
        )
    page = rows[:limit]
    return DeliveryPage(
        items=[_delivery(d, e) for d, e in page],
        next_cursor=str(page[-1][0].id) if len(rows) > limit else None,
    )


@router.post(
    "/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryView,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(401, 404, 422, 503),
)
def redeliver(
    endpoint_id: str, delivery_id: int, session: SessionDep, principal: PrincipalDep
) -> DeliveryView:
    """Send the delivery's event again (same `webhook-id`), now, with a fresh retry window."""
    with _mapped(), session.begin():
        delivery = webhooks.redeliver(session, principal.subject, endpoint_id, delivery_id)
        event = session.scalars(select(ExportEvent).where(ExportEvent.id == delivery.event_id)).one()
        return _delivery(delivery, event)


# -- Telegram ------------------------------------------------------------------------------------------
def _bot(request: Request) -> telegram.TelegramBot:
    bot: telegram.TelegramBot | None = request.app.state.telegram_bot
    if bot is None:
        raise FeatureOff("Telegram notifications are off on this server: TELEGRAM_BOT_TOKEN is unset")
    return bot


@router.get("/notifications/telegram", response_model=TelegramStatus, responses=errors(401, 503))
def telegram_status(request: Request, session: SessionDep, principal: PrincipalDep) -> TelegramStatus:
    link = telegram.link_status(session, principal.subject)
    linked = link is not None and link.chat_id is not None
    return TelegramStatus(
        enabled=request.app.state.telegram_bot is not None,
        linked=linked,
        linked_at=link.linked_at if link is not None and linked else None,
    )


@router.post(
    "/notifications/telegram/link",
    response_model=TelegramLinkCreated,
    responses={
        **errors(401, 503),
        409: {"model": ErrorBody, "description": "Telegram is off on this server (TELEGRAM_BOT_TOKEN unset)"},
    },
)
def telegram_link(
    request: Request, session: SessionDep, principal: PrincipalDep, settings: SettingsDep
) -> TelegramLinkCreated:
    """A one-time link: open it in Telegram and press Start; completions are then sent to that chat."""
    bot = _bot(request)
    try:
        username = bot.username(settings.telegram_bot_username)
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise FeatureOff(f"the Telegram Bot API did not answer getMe ({type(exc).__name__})") from exc
    ttl = timedelta(seconds=settings.telegram_link_code_ttl_seconds)
    with session.begin():
        code = telegram.new_link_code(session, principal.subject, ttl)
        link = telegram.link_status(session, principal.subject)
        assert link is not None and link.code_expires_at is not None
        expires_at = link.code_expires_at
    return TelegramLinkCreated(link=f"https://t.me/{username}?start={code}", code=code, expires_at=expires_at)


@router.delete(
    "/notifications/telegram/link", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 404, 503)
)
def telegram_unlink(session: SessionDep, principal: PrincipalDep) -> Response:
    """Stop Telegram messages: the chat is forgotten (a 404 when none was linked)."""
    with session.begin():
        if not telegram.unlink(session, principal.subject):
            raise NotFound("no Telegram chat is linked")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@telegram_router.post(
    "/notifications/telegram/webhook",
    responses={
        **errors(403, 422, 503),
        401: {"model": ErrorBody, "description": "wrong or missing X-Telegram-Bot-Api-Secret-Token"},
    },
)
def telegram_update(
    update: dict[str, Any],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    secret_token: Annotated[str | None, Depends(telegram_secret)],
) -> dict[str, bool]:
    """Telegram's updates (`setWebhook` with `secret_token`); anything without that token is refused."""
    expected = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else ""
    if request.app.state.telegram_bot is None or not expected:
        raise Forbidden("Telegram updates are not accepted here (TELEGRAM_WEBHOOK_SECRET is unset)")
    if not secret_token or not hmac.compare_digest(secret_token.encode(), expected.encode()):
        raise WrongSecretToken("wrong or missing X-Telegram-Bot-Api-Secret-Token")
    with session.begin():
        reply = telegram.link_from_update(session, update)
    if reply is not None:
        request.app.state.telegram_bot.send_message(*reply)  # best effort; the link is stored
    return {"ok": True}


def install_notifications(app: FastAPI, settings: Settings) -> None:
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    app.state.telegram_bot = (
        telegram.TelegramBot(settings.telegram_api_url, token, httpx.Client(), timeout=5)
        if settings.telegram_enabled
        else None
    )
    app.include_router(router)
    app.include_router(telegram_router)
