"""Typed dependencies for route handlers: settings, a DB session, the Redis that carries work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; the handler commits what it changes."""
    with request.app.state.session_factory() as session:
        yield session


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
RedisDep = Annotated[Redis, Depends(get_redis)]


_bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey", description="An API key: `findap keys create`."
)


def get_project_id(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's project, from the Bearer key (401 without a known key, 403 if revoked)."""
    from app.services.api_keys import project_of_key

    return project_of_key(session, None if credentials is None else credentials.credentials)


ProjectDep = Annotated[str, Depends(get_project_id)]
"""The id of the project the request acts for; everything it reads or makes is scoped to it."""


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string: a retry with the same key and body returns what the "
        "first request made, and makes nothing new.",
    ),
]
