"""Request and response bodies of `/events`, `/webhooks` and `/notifications/telegram`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from export_engine.db.events import EVENT_TYPES

if TYPE_CHECKING:
    EventType = str
else:  # validated, and listed in the OpenAPI document, from the one list in export_engine.db.events
    EventType = Literal[EVENT_TYPES]


class EventView(BaseModel):
    id: str = Field(description="the event id; webhooks carry it as `webhook-id`")
    type: str
    timestamp: datetime = Field(description="when the status changed (the export DB's clock)")
    data: dict[str, Any] = Field(
        description="reference_id, owner, status, dataset, date_from, date_to, format, compression, "
        "row_count, file_size_bytes; error when failed or canceled; attempt when running"
    )


class EventPage(BaseModel):
    """Oldest first. Keep `next_cursor` and pass it back as `cursor` to read only what is new."""

    items: list[EventView]
    next_cursor: str | None = Field(description="the position after the last item (or the one given)")
    has_more: bool


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, description="http(s), a public address")
    events: list[EventType] = Field(min_length=1, description="the event types to deliver")


class WebhookView(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime
    failing_since: datetime | None = Field(
        None, description="set when a delivery ran out of retries; cleared by the next success"
    )
    previous_secret_valid_until: datetime | None = Field(
        None, description="after a rotation: until when the old secret also signs"
    )


class WebhookCreated(WebhookView):
    secret: str = Field(
        description="`whsec_<base64>`: shown only here and on rotation; verify signatures with it"
    )


class WebhookList(BaseModel):
    items: list[WebhookView]


class DeliveryView(BaseModel):
    id: int
    event_id: str
    event_type: str
    reference_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = Field(None, description="while pending: the next attempt")
    created_at: datetime
    delivered_at: datetime | None = None


class DeliveryPage(BaseModel):
    """Newest first; pass `next_cursor` back as `cursor` for older deliveries."""

    items: list[DeliveryView]
    next_cursor: str | None = None


class TelegramLinkCreated(BaseModel):
    link: str = Field(description="https://t.me/<bot>?start=<code>: open it and press Start")
    code: str
    expires_at: datetime


class TelegramStatus(BaseModel):
    enabled: bool = Field(description="false when this server has no TELEGRAM_BOT_TOKEN")
    linked: bool
    linked_at: datetime | None = None
