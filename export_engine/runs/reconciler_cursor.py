"""The reconciler sensor's cursor: where the next tick's batch starts, and since when it has watched.

- **Paging.** A tick examines `batch` active exports (oldest first, by (created_at, reference_id));
  the next tick starts after the last one, and a short batch sends the next tick back to the oldest
  (review 2026-12-07 N8: only the 200 oldest were ever examined).
- **Watching since.** The queue deadline counts only time the reconciler has been watching: after a
  daemon outage (no tick for `UNWATCHED_AFTER_SECONDS`) every queued run gets a full deadline again,
  since the queue coordinator was down too and starts the backlog within seconds (review N5).

    cursor = ReconcilerCursor.read(context.cursor, now=time.time())
    ... rows after cursor.page ...
    context.update_cursor(cursor.next(last_row_key, full_batch, now=time.time()))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

UNWATCHED_AFTER_SECONDS = 120.0  # ticks come every few seconds; a gap this long was an outage

PageKey = tuple[datetime, str]  # (created_at, reference_id) of the last export examined


@dataclass(frozen=True)
class ReconcilerCursor:
    page: PageKey | None  # start after this export; None: from the oldest
    watching_since: float  # time.time() since which ticks have come without a gap

    @classmethod
    def read(cls, raw: str | None, *, now: float) -> ReconcilerCursor:
        try:
            data = json.loads(raw or "")
            page = (datetime.fromisoformat(data["page"][0]), str(data["page"][1])) if data["page"] else None
            since, seen_at = float(data["watching_since"]), float(data["seen_at"])
        except (ValueError, TypeError, KeyError, IndexError):  # no cursor yet, or another version's
            return cls(None, now)
        return cls(page, now if now - seen_at > UNWATCHED_AFTER_SECONDS else since)

    def next(self, last: PageKey | None, *, now: float) -> str:
        """The cursor after a tick; `last` is the batch's last export, None when the batch was short."""
        page = [last[0].isoformat(), last[1]] if last else None
        return json.dumps({"page": page, "watching_since": self.watching_since, "seen_at": now})

    def queued_seconds(self, created_at: datetime, *, now: float) -> float:
        """How long a run created at `created_at` has waited in the queue while the reconciler watched."""
        return now - max(created_at.timestamp(), self.watching_since)
