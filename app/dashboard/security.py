"""The dashboard's defences in the browser: state-changing requests only from its own pages
(Origin, else Referer) and with their CSRF token, and headers that keep its pages out of frames
and its scripts its own."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.dashboard.auth import COOKIE_PATH
from app.dashboard.csrf import SAFE_METHODS, csrf_protect

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",  # scripts, styles, images and fetches from the dashboard only
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
"""On every dashboard response, pages, redirects and errors alike."""
SECURITY_HEADER_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, or None when it names none (`null`, a bare path)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def same_origin_only(request: Request) -> None:
    """Refuse (403) a state-changing request that a page of another site sent: its Origin, or
    without one its Referer, must be the dashboard's own. Browsers send one of the two with
    every form POST, so a request with neither comes from no page and is refused as well."""
    if request.method in SAFE_METHODS:
        return
    sent_from = request.headers.get("origin") or request.headers.get("referer")
    own = f"{request.url.scheme}://{request.url.netloc}".lower()
    if sent_from is None:
        raise HTTPException(
            status_code=403,
            detail="origin: no Origin or Referer header says which page sent this; "
            "use the dashboard's own form",
        )
    if origin_of(sent_from) != own:
        raise HTTPException(
            status_code=403,
            detail=f"origin: only the dashboard's own pages ({own}) may send this, "
            f"not {sent_from!r}",
        )


class DashboardHeadersMiddleware:
    """Adds SECURITY_HEADERS to every response under /dashboard; the API's own pages (/docs
    loads its script from a CDN) are left as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_dashboard_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                kept = [(k, v) for k, v in headers if k.lower() not in SECURITY_HEADER_NAMES]
                message["headers"] = kept + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_dashboard_path(path: str) -> bool:
    return path == COOKIE_PATH or path.startswith(COOKIE_PATH + "/")


GUARDS = [Depends(same_origin_only), Depends(csrf_protect)]
"""On every dashboard router: a POST from another site, or without this browser's token, is 403."""
