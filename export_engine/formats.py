"""Output formats: file extension and Content-Type of each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormatSpec:
    extension: str
    content_type: str


FORMATS: dict[str, FormatSpec] = {
    "csv": FormatSpec(".csv", "text/csv; charset=utf-8"),
}
