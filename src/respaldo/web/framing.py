"""The page refuses to be shown inside another site's frame, and runs only its own files.

SameSite=Strict keeps the session's cookies out of a frame that another *site* puts the
page in, but not out of one a same-site origin does: a sibling subdomain, or another port
of the same host (the ERP at ``erp.example.com`` and respaldo at
``backup.example.com``; a tool on port 8080 of the same machine). There the page would
load logged in, and a transparent frame over a decoy could get its buttons clicked ("run
a restore test", "cancel" a job). Every answer of the site tells the browser never to
frame it: ``Content-Security-Policy: frame-ancestors 'none'`` (and ``X-Frame-Options:
DENY`` for browsers that predate it). An answer that sets its own policy (the API's
``/docs``, which says ``frame-ancestors 'none'`` too) keeps it.

The same header says more: the page has no inline scripts or styles (``respaldo.js`` and
``respaldo.css`` from ``/static``; the charts are SVG elements with classes), so the
browser is told to run and apply nothing else. A name or a detail that got into the HTML
unescaped would then still run nothing (no inline script, no ``onerror=``, no script or
style from elsewhere, no ``<base>`` that moves the relative URLs, no form posting
elsewhere): a second wall behind the templates' escaping.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from respaldo.api.headers import AddedHeaders, Headers

PAGE_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'"
)


def no_framing(present: set[bytes]) -> Headers:
    """The two refusals, each unless the answer sets its own."""
    added = []
    if b"content-security-policy" not in present:
        added.append((b"content-security-policy", PAGE_POLICY))
    if b"x-frame-options" not in present:
        added.append((b"x-frame-options", b"DENY"))
    return added


class NoFraming(AddedHeaders):
    """ASGI middleware adding the headers above to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, no_framing)
