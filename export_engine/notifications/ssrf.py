"""Where a webhook may point: http(s) only, and only at public addresses unless a network is allowed.

Checked when an endpoint is registered and again before every attempt (a name can be re-pointed after
registration). Redirects are never followed by the sender, so a public URL cannot bounce inward.

The sender connects to an address the check accepted (`pin`), never resolving the name a second time:
otherwise a name that answers a public address to the check and an internal one a moment later (DNS
rebinding) would pass. The URL's host still goes in the Host header and, for https, in TLS SNI and the
certificate's hostname check (httpx's `sni_hostname` request extension).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from export_engine.notifications.errors import UnsafeUrl

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str) -> list[IPNetwork]:
    """`WEBHOOK_ALLOWED_NETWORKS`: comma-separated CIDRs (`127.0.0.0/8,::1/128`)."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def check_url(url: str, allowed: list[IPNetwork]) -> list[IPAddress]:
    """Raise `UnsafeUrl` naming the reason, or return every address the host resolves to (all fine),
    in the resolver's order: connect to these (`pin`), not to the name."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrl(f"url: not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl(f"url: only http and https URLs are accepted, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise UnsafeUrl("url: the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("url: credentials in the URL are not accepted")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError) as exc:
        raise UnsafeUrl(f"url: the host {parts.hostname!r} does not resolve ({exc})") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = _unmapped(ipaddress.ip_address(info[4][0]))
        if not address.is_global and not any(address in network for network in allowed):
            raise UnsafeUrl(
                f"url: {parts.hostname!r} resolves to {address}, a {_kind(address)} address; "
                "only public addresses are accepted (WEBHOOK_ALLOWED_NETWORKS lists exceptions)"
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"url: the host {parts.hostname!r} does not resolve (no address)")
    return addresses


@dataclass(frozen=True)
class Pinned:
    """A request to `url` that connects to `address`: pass `url`, `headers` and `extensions` to httpx."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any] = field(default_factory=dict)


def pin(url: str, address: IPAddress) -> Pinned:
    """`url` with its host replaced by the checked `address`; the name stays in Host (and SNI for https)."""
    named = httpx.URL(url)
    extensions = {"sni_hostname": named.host} if named.scheme == "https" else {}
    return Pinned(named.copy_with(host=str(address)), {"Host": named.netloc.decode("ascii")}, extensions)


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _kind(address: IPAddress) -> str:
    for kind in ("unspecified", "loopback", "link_local", "private", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "non-public"
