"""Whether ``respaldo serve``'s ``[server] listen`` exposes logins in clear text.

A password typed on the page, the tokens the API answers with and the bearer tokens of
every request cross the network as they are when ``serve`` speaks plain HTTP on an
address other machines reach. That is fine on loopback (alone, or behind a reverse proxy
on the same machine that speaks HTTPS, named in ``trusted_proxies``), and with
``tls_certificate``; anything else was started silently.
"""

from __future__ import annotations

import ipaddress

from respaldo.config import ServerSettings


def is_loopback(host: str) -> bool:
    """Whether ``host`` (``listen``'s host, brackets removed) reaches this machine only.
    A host name other than ``localhost`` is taken for a network one (it resolves to an
    address others reach, as a rule); ``0.0.0.0`` and ``::`` listen on every address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clear_text_warning(server: ServerSettings) -> str | None:
    """The warning for a ``listen`` address off loopback with neither TLS nor a trusted
    reverse proxy (None: not so). Not refused: a private network may be the operator's
    choice, and refusing would stop the backups that ``serve`` schedules."""
    if server.tls or server.trusted_proxies or is_loopback(server.host):
        return None
    return (
        f"[server] listen = {server.listen!r} is reachable from the network and serves "
        "plain HTTP: passwords and tokens cross the network in clear text. Set [server] "
        "tls_certificate and tls_key, or listen on 127.0.0.1 behind a reverse proxy that "
        "speaks HTTPS and name it in [server] trusted_proxies (docs/api.md)"
    )
