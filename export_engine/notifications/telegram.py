"""Telegram: the Bot API client, the link-code flow and the messages (seed 001, "Telegram Notification").

Linking: the owner asks for a code (`new_link_code`), opens `https://t.me/<bot>?start=<code>`, Telegram
sends the bot `/start <code>` (webhook update or getUpdates), and `link_from_update` stores the chat.
Only owners with a linked chat get messages; everyone else gets nothing, silently.
"""

from __future__ import annotations

import html
import secrets
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from export_engine.db.models import TelegramLink, TelegramState
from export_engine.notifications.webhooks import MAX_ERROR_CHARS, Attempt

OFFSET_KEY = "updates_offset"


class TelegramBot:
    """A few Bot API methods over httpx; the token is part of the URL and is never logged."""

    def __init__(self, api_url: str, token: str, client: httpx.Client, timeout: float = 10) -> None:
        self._base = f"{api_url.rstrip('/')}/bot{token}"
        self._client = client
        self._timeout = timeout
        self._username: str | None = None

    def call(self, method: str, **params: Any) -> httpx.Response:
        return self._client.post(f"{self._base}/{method}", json=params, timeout=self._timeout)

    def username(self, configured: str | None = None) -> str:
        if configured:
            return configured.lstrip("@")
        if self._username is None:
            response = self.call("getMe")
            response.raise_for_status()
            self._username = str(response.json()["result"]["username"])
        return self._username

    def send_message(self, chat_id: str, text: str) -> Attempt:
        """sendMessage (HTML); 429 carries Telegram's `retry_after`, 5xx and timeouts are retried."""
        try:
            response = self.call(
                "sendMessage",
                chat_id=chat_id,
                text=text,
                parse_mode="HTML",
                link_preview_options={"is_disabled": True},
            )
        except httpx.HTTPError as exc:
            return Attempt(delivered=False, retry=True, error=type(exc).__name__)
        code = response.status_code
        if code == 200:
            return Attempt(delivered=True, retry=False, status_code=code)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        error = f"HTTP {code}: {answer.get('description', response.text[:200])}"[:MAX_ERROR_CHARS]
        if code == 429:
            retry_after = (answer.get("parameters") or {}).get("retry_after")
            return Attempt(
                delivered=False,
                retry=True,
                status_code=code,
                error=error,
                retry_after=float(retry_after) if retry_after is not None else None,
            )
        return Attempt(delivered=False, retry=code >= 500, status_code=code, error=error)

    def get_updates(self, offset: int) -> list[dict[str, Any]]:
        response = self.call("getUpdates", offset=offset, timeout=0, allowed_updates=["message"])
        response.raise_for_status()
        return list(response.json().get("result", []))


# -- messages ------------------------------------------------------------------------------------------
def humanize(lifetime: timedelta) -> str:
    """'24 hours', '1 hour', '45 minutes', '3 days': how long a link works, to the nearest unit (a link
    signed for 24 h a moment after its file completed has 23 h 59 min left: that is '24 hours')."""
    seconds = max(0, int(lifetime.total_seconds()))
    if seconds >= 47.5 * 3600:
        return _plural(round(seconds / 86400), "day")
    if seconds >= 3570:
        return _plural(round(seconds / 3600), "hour")
    return _plural(max(1, round(seconds / 60)), "minute")


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def completion_text(*, dataset_name: str, row_count: int, url: str, label: str, lifetime: timedelta) -> str:
    e = html.escape
    return (
        f"<b>Export Ready</b>\n\n"
        f"Your <b>{e(dataset_name)}</b> export is ready.\n"
        f"Rows: {row_count:,}\n\n"
        f'<a href="{e(url, quote=True)}">Download {e(label)}</a>\n\n'
        f"<i>Link expires in {humanize(lifetime)}</i>"
    )


def failure_text(*, dataset_name: str, reason: str) -> str:
    e = html.escape
    return f"<b>Export Failed</b>\n\nYour <b>{e(dataset_name)}</b> export failed.\nReason: {e(reason[:500])}"


# -- linking -------------------------------------------------------------------------------------------
def new_link_code(session: Session, owner: str, ttl: timedelta) -> str:
    """A fresh one-time code (replacing an unused one); the owner's linked chat, if any, stays linked."""
    code = secrets.token_urlsafe(24)  # 32 characters of [A-Za-z0-9_-]: what a t.me start parameter allows
    session.execute(
        insert(TelegramLink)
        .values(owner=owner, code=code, code_expires_at=func.now() + ttl)
        .on_conflict_do_update(
            index_elements=[TelegramLink.owner],
            set_={"code": code, "code_expires_at": func.now() + ttl},
        )
    )
    return code


def link_from_update(session: Session, update_: dict[str, Any]) -> tuple[str, str] | None:
    """`/start <code>` from a chat → link it; returns (chat id, reply) or None when the update is not one."""
    message = update_.get("message") or {}
    text = str(message.get("text") or "")
    chat_id = (message.get("chat") or {}).get("id")
    if chat_id is None or not text.startswith("/start"):
        return None
    code = text.removeprefix("/start").strip()
    if not code:
        return str(chat_id), "Open the link from the export service to connect this chat."
    linked = session.execute(
        update(TelegramLink)
        .where(TelegramLink.code == code, TelegramLink.code_expires_at > func.now())
        .values(chat_id=str(chat_id), code=None, code_expires_at=None, linked_at=func.now())
        .returning(TelegramLink.owner)
    ).first()
    if linked is None:
        return str(chat_id), "This link has expired or was already used. Ask for a new one."
    return str(chat_id), "Connected: you will get a message here when your exports are ready."


def unlink(session: Session, owner: str) -> bool:
    removed = session.execute(
        delete(TelegramLink)
        .where(TelegramLink.owner == owner, TelegramLink.chat_id.is_not(None))
        .returning(TelegramLink.owner)
    )
    return removed.first() is not None


def chat_of(session: Session, owner: str) -> str | None:
    return session.scalar(select(TelegramLink.chat_id).where(TelegramLink.owner == owner))


def link_status(session: Session, owner: str) -> TelegramLink | None:
    return session.get(TelegramLink, owner)


def updates_offset(session: Session) -> int:
    value = session.scalar(select(TelegramState.value).where(TelegramState.key == OFFSET_KEY))
    return int(value) if value else 0


def save_updates_offset(session: Session, offset: int) -> None:
    session.execute(
        insert(TelegramState)
        .values(key=OFFSET_KEY, value=str(offset))
        .on_conflict_do_update(index_elements=[TelegramState.key], set_={"value": str(offset)})
    )
