"""Where a webhook may be sent: public http(s) addresses only, unless the operator allows
private ones (WEBHOOKS_ALLOW_PRIVATE_URLS). Checked when an endpoint is made and again before
every send, since what a name resolves to can change."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from app.kernel.errors import InvalidInputError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_webhook_url(url: str, *, allow_private: bool) -> list[IpAddress]:
    """InvalidInputError naming `url` unless it is an http(s) URL whose host resolves only to
    public addresses (any host when allow_private). Returns the addresses checked (none when
    allow_private), for the sender to connect to those and no others."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInputError(f"url: must be an http or https URL, got {url!r}")
    if not parts.hostname:
        raise InvalidInputError(f"url: names no host, got {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInputError(f"url: has an invalid port, got {url!r}") from None
    if allow_private:
        return []
    addresses = resolve(parts.hostname, port)
    for address in addresses:
        if not is_public(address):
            raise InvalidInputError(
                f"url: {parts.hostname} resolves to {address}, a private, loopback, link-local "
                "or reserved address (the operator may allow these: WEBHOOKS_ALLOW_PRIVATE_URLS)"
            )
    return addresses


def resolve(host: str, port: int) -> list[IpAddress]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise InvalidInputError(f"url: host {host!r} does not resolve ({error})") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def is_public(address: IpAddress) -> bool:
    """A globally routable unicast address (an IPv4 address mapped into IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
