"""Dashboard sign-in: the API key lives in an HttpOnly cookie; pages without a usable key
redirect to the login form."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Cookie, Depends, HTTPException, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.kernel.errors import ForbiddenError, UnauthorizedError
from app.services.api_keys import project_of_key

COOKIE = "findap_key"
COOKIE_PATH = "/dashboard"
COOKIE_MAX_AGE_S = 30 * 24 * 3600

LOGIN_NOTICES = {
    "revoked": "Your API key was revoked: sign in with another key.",
    "unknown": "Your API key is no longer known: sign in with another key.",
    "signed_out": "Signed out.",
}
"""What the login page says after a redirect, by its `notice` query value."""


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path only, never another site."""
    if target and target.startswith(COOKIE_PATH) and not target.startswith("//"):
        return target
    return COOKIE_PATH


def login_redirect(request: Request, notice: str | None = None) -> HTTPException:
    """A 303 to the login form that comes back to this page afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{COOKIE_PATH}/login?next={quote(target, safe='')}"
    if notice:
        location += f"&notice={notice}"
    return HTTPException(status_code=303, detail="sign in first", headers={"Location": location})


def dashboard_project(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    key: Annotated[str | None, Cookie(alias=COOKIE)] = None,
) -> str:
    """The project of the key in the cookie; a redirect to the login form without a usable one."""
    try:
        return project_of_key(session, key, cache_s=settings.api_key_cache_s)
    except ForbiddenError:
        raise login_redirect(request, "revoked") from None
    except UnauthorizedError:
        raise login_redirect(request, "unknown" if key else None) from None


def polling_project(
    session: SessionDep,
    settings: SettingsDep,
    key: Annotated[str | None, Cookie(alias=COOKIE)] = None,
) -> str:
    """As dashboard_project, for the JSON the pages poll: a plain 401 instead of a redirect."""
    try:
        return project_of_key(session, key, cache_s=settings.api_key_cache_s)
    except (ForbiddenError, UnauthorizedError) as error:
        raise HTTPException(status_code=401, detail=error.detail) from None


DashboardProject = Annotated[str, Depends(dashboard_project)]
PollingProject = Annotated[str, Depends(polling_project)]


def store_key(response: Response, key: str, *, secure: bool) -> None:
    """Keep the key for the dashboard's paths only, out of reach of scripts and other sites."""
    response.set_cookie(
        COOKIE,
        key,
        max_age=COOKIE_MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def forget_key(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure)
