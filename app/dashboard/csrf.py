"""CSRF tokens for the dashboard's forms: every state-changing request carries a token that only
a page of this dashboard, read by this browser, could have given it.

A signed-in page's token is an HMAC of the key in the session cookie; the sign-in form, which has
no session yet, gets one bound to a random cookie of its own (a signed double-submit cookie).
Forms send the token as the hidden field `csrf_token` (`{{ csrf_field() }}` in a template),
scripts as the header `X-CSRF-Token` (the page's `<meta name="csrf-token">`). The HMAC key is
random, made once and kept in Redis, so that every API process signs alike."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException, Request
from markupsafe import Markup, escape
from redis import Redis
from starlette.concurrency import run_in_threadpool

from app.dashboard.auth import COOKIE, COOKIE_PATH

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SIGN_IN_COOKIE = "findap_csrf"
SIGN_IN_PATH = f"{COOKIE_PATH}/login"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def signing_secret(redis: Redis, prefix: str) -> bytes:
    """The HMAC key of every token, made on first use; SET NX keeps the first one made."""
    name = f"{prefix}:dashboard:csrf-secret"
    secret = redis.get(name)
    if secret is None:
        redis.set(name, secrets.token_hex(32), nx=True)
        secret = redis.get(name)
    if secret is None:
        raise RuntimeError(f"{name}: not kept by Redis")
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def sign(secret: bytes, binding: str) -> str:
    return hmac.new(secret, binding.encode(), hashlib.sha256).hexdigest()


def session_binding(request: Request) -> str | None:
    key = request.cookies.get(COOKIE)
    return f"session:{key}" if key else None


def sign_in_binding(nonce: str | None) -> str | None:
    return f"sign-in:{nonce}" if nonce else None


def new_sign_in_nonce() -> str:
    return secrets.token_urlsafe(32)


def secret_of(request: Request) -> bytes:
    """The signing secret, read from Redis once per request."""
    if not hasattr(request.state, "csrf_secret"):
        app_state = request.app.state
        request.state.csrf_secret = signing_secret(app_state.redis, app_state.settings.queue_name)
    return bytes(request.state.csrf_secret)


def page_token(request: Request) -> str:
    """The token this page's forms carry: the sign-in form's when the page set one
    (request.state.csrf_nonce), else the session's; empty on a page with neither."""
    binding = sign_in_binding(getattr(request.state, "csrf_nonce", None)) or session_binding(
        request
    )
    return sign(secret_of(request), binding) if binding else ""


def csrf_field(request: Request) -> Markup:
    """The hidden input every state-changing form of the dashboard holds."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, escape(page_token(request))
    )


def accepted_bindings(request: Request) -> list[str]:
    """What a token may be bound to: the session; on the sign-in form also its own cookie."""
    found = [session_binding(request)]
    if request.url.path == SIGN_IN_PATH:
        found.append(sign_in_binding(request.cookies.get(SIGN_IN_COOKIE)))
    return [binding for binding in found if binding]


async def sent_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    field = (await request.form()).get(CSRF_FIELD)
    return field if isinstance(field, str) and field else None


async def csrf_protect(request: Request) -> None:
    """Refuse (403) a state-changing request without this browser's token: another site can
    make a browser send a form, but cannot read the page that holds the token."""
    if request.method in SAFE_METHODS:
        return
    token = await sent_token(request)
    if token is None:
        raise HTTPException(
            status_code=403,
            detail=f"{CSRF_FIELD}: missing; send the form from a dashboard page (the hidden "
            f"field {CSRF_FIELD}, or the header {CSRF_HEADER} from a script)",
        )
    secret = await run_in_threadpool(secret_of, request)
    expected = [sign(secret, binding) for binding in accepted_bindings(request)]
    if not any(hmac.compare_digest(token.encode(), wanted.encode()) for wanted in expected):
        raise HTTPException(
            status_code=403,
            detail=f"{CSRF_FIELD}: not this session's token (the page is older than the "
            "sign-in, or another site sent it); reload the page and try again",
        )
