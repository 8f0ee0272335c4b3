"""Lifecycle notifications: signed webhooks (Standard Webhooks) and Telegram, fed by the events outbox.

- `ssrf` — where a webhook may point; `signing` — `whsec_` secrets and `v1` signatures;
- `webhooks` — endpoints, the delivery log, one signed attempt; `telegram` — Bot API, linking, texts;
- `messages` — the Telegram text of an event (with a freshly signed link);
- `dispatch` — `Notifier`: outbox → deliveries → receivers, with retries (run by `notification_sensor`).

The event types themselves live with the outbox, in `export_engine.db.events`.
"""
