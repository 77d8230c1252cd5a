"""Outgoing HTTP to addresses users typed in (robots, webhooks), kept off the inside.

An address must be https (http only where an admin allows it), and the address actually
connected to must not be loopback, private, link-local, multicast or otherwise reserved.
The check runs on the socket's peer after it connected, so a name that resolves to a
public address when added and to 127.0.0.1 when sent (DNS rebinding) is still caught.
Hosts an admin lists in OUTGOING_ALLOWED_HOSTS skip the address check (an intranet robot,
the tests' own receivers)."""

import ipaddress
from urllib.parse import urlsplit

import requests
from flask import current_app
from flask_babel import gettext as _
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class ForbiddenAddress(Exception):
    """The address may not be called (scheme, or where it leads)."""


def allowed_hosts() -> frozenset[str]:
    hosts = current_app.config["OUTGOING_ALLOWED_HOSTS"] or ()
    if isinstance(hosts, str):
        hosts = hosts.split(",")
    return frozenset(host.strip().lower() for host in hosts if host.strip())


def check_url(url: str) -> None:
    """Refuse an address by its form: its scheme and, for a literal IP, its range."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError as error:
        raise ForbiddenAddress(_("This is not a valid web address.")) from error
    allowed = allowed_hosts()
    if parts.scheme == "http" and not (
        current_app.config["OUTGOING_ALLOW_HTTP"] or host in allowed
    ):
        raise ForbiddenAddress(_("The address must start with https://."))
    if parts.scheme not in ("https", "http") or not host:
        raise ForbiddenAddress(_("The address must start with https://."))
    if host in allowed:
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked where it leads when connecting
    if not is_public(address):
        raise ForbiddenAddress(_("This address leads into a private network."))


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def _check_peer(connection) -> None:
    if connection.host.lower() in connection.yunketang_allowed:
        return
    peer = connection.sock.getpeername()[0]
    if not is_public(ipaddress.ip_address(peer.split("%", 1)[0])):
        connection.sock.close()
        raise ForbiddenAddress(f"{connection.host} leads to {peer}, a private address")


class _CheckedHTTPConnection(HTTPConnection):
    yunketang_allowed: frozenset[str] = frozenset()

    def connect(self):
        super().connect()
        _check_peer(self)


class _CheckedHTTPSConnection(HTTPSConnection):
    yunketang_allowed: frozenset[str] = frozenset()

    def connect(self):
        # Checked after the TCP connect and TLS handshake, before a byte of the request.
        super().connect()
        _check_peer(self)


class _CheckingAdapter(HTTPAdapter):
    def __init__(self, allowed: frozenset[str]):
        self.allowed = allowed
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        allowed = self.allowed

        class Plain(HTTPConnectionPool):
            ConnectionCls = type("Plain", (_CheckedHTTPConnection,), {"yunketang_allowed": allowed})

        class Secure(HTTPSConnectionPool):
            ConnectionCls = type(
                "Secure", (_CheckedHTTPSConnection,), {"yunketang_allowed": allowed}
            )

        self.poolmanager.pool_classes_by_scheme = {"http": Plain, "https": Secure}


def checked_session() -> requests.Session:
    """A requests session whose every connection is checked as above; proxies from the
    environment are ignored (the check would otherwise look at the proxy)."""
    session = requests.Session()
    session.trust_env = False
    adapter = _CheckingAdapter(allowed_hosts())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
