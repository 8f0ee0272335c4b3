"""Errors of the notifications package.

NotificationError
├── UnsafeUrl      a webhook URL that is not http(s) or resolves to a non-public address (SSRF)
└── UnknownTarget  a webhook endpoint or delivery the caller does not have
"""

from __future__ import annotations


class NotificationError(Exception):
    pass


class UnsafeUrl(NotificationError):
    pass


class UnknownTarget(NotificationError):
    pass
