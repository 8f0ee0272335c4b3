"""Advisory locks shared by the gateway and the engine."""

from __future__ import annotations


def dedup_lock_id(dedup_key: str) -> int:
    """The transaction-scoped advisory lock id for a dedup key (its first 64 bits)."""
    return int.from_bytes(bytes.fromhex(dedup_key[:16]), "big", signed=True)
