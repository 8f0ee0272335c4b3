"""What a user asks for, in canonical form, and the dedup key derived from it.

Everything that changes the bytes of the exported file is part of the key; nothing else is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date

from export_engine.formats import FORMATS


@dataclass(frozen=True)
class ExportSpec:
    """A validated export request, scoped to its owner."""

    table_name: str
    date_from: date
    date_to: date
    owner: str
    format: str = "csv"

    def canonical(self) -> dict[str, str]:
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(self).items()}

    @classmethod
    def from_canonical(cls, data: dict[str, str]) -> ExportSpec:
        return cls(
            table_name=data["table_name"],
            date_from=date.fromisoformat(data["date_from"]),
            date_to=date.fromisoformat(data["date_to"]),
            owner=data["owner"],
            format=data.get("format", "csv"),
        )

    @property
    def dedup_key(self) -> str:
        """SHA-256 of `table|from|to|owner|<other params as sorted JSON>`."""
        extra = {k: v for k, v in self.canonical().items() if k not in _KEY_HEAD}
        head = "|".join(self.canonical()[k] for k in _KEY_HEAD)
        payload = head + "|" + json.dumps(extra, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def object_key(self, reference_id: str) -> str:
        ext = FORMATS[self.format].extension
        return f"exports/{self.table_name}/{self.date_from}_{self.date_to}/{reference_id}{ext}"

    @property
    def download_filename(self) -> str:
        return f"{self.table_name}_{self.date_from}_{self.date_to}{FORMATS[self.format].extension}"


_KEY_HEAD = ("table_name", "date_from", "date_to", "owner")
