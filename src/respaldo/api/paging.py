"""Pagination headers: ``X-Total-Count`` and an RFC 8288 ``Link`` to the other pages,
with the request's other query parameters kept."""

from __future__ import annotations

from fastapi import Request


def page_headers(request: Request, total: int, limit: int, offset: int) -> dict[str, str]:
    """The headers of the page ``offset``/``limit`` of ``total`` items."""
    links = {"first": 0}
    if offset > 0:
        links["prev"] = max(0, offset - limit)
    if offset + limit < total:
        links["next"] = offset + limit
    links["last"] = max(0, (total - 1) // limit * limit) if total else 0
    url = request.url
    parts = [
        f'<{url.include_query_params(limit=limit, offset=at)}>; rel="{rel}"'
        for rel, at in links.items()
    ]
    return {"X-Total-Count": str(total), "Link": ", ".join(parts)}
