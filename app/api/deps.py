"""Typed dependencies for route handlers: settings, a DB session, the Redis that carries work.

The ones that do no I/O are `async def`: FastAPI runs a plain `def` dependency in the thread
pool, a hop that costs more than the dependency itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from anyio import CancelScope
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.kernel.config import Settings


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request; the handler commits what it changes."""
    session = request.app.state.session_factory()  # connects on first use, in the handler
    try:
        yield session
    finally:
        if session.in_transaction():
            # Closing rolls back on the database, a round trip: off the event loop, and done
            # even when the client went away.
            with CancelScope(shield=True):
                await run_in_threadpool(session.close)
        else:
            session.close()


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session for a handler that only reads; each statement is its own transaction."""
    with request.app.state.read_session_factory() as session:
        yield session  # closing it has nothing to roll back: no I/O on the event loop


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
RedisDep = Annotated[Redis, Depends(get_redis)]


_bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey", description="An API key: `findap keys create`."
)


async def get_project_id(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's project, from the Bearer key (401 without a known key, 403 if revoked)."""
    from app.services.api_keys import cached_project, project_of_key

    secret = None if credentials is None else credentials.credentials
    project = cached_project(secret, cache_s=settings.api_key_cache_s)
    if project is not None:
        return project

    def look_up() -> str:
        # A session of its own, closed at once: a request never holds two pooled connections
        # (with its handler's), which under load could wait on each other until the pool times out.
        with request.app.state.read_session_factory() as session:
            return project_of_key(session, secret, cache_s=settings.api_key_cache_s)

    return await run_in_threadpool(look_up)


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


async def get_key_name(
    request: Request,
    project: ProjectDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The name of the caller's (checked) key: who made a review."""
    from app.services.api_keys import key_name

    secret = "" if credentials is None else credentials.credentials  # ProjectDep checked it

    def look_up() -> str:
        with request.app.state.read_session_factory() as session:
            return key_name(session, secret)

    return await run_in_threadpool(look_up)


KeyNameDep = Annotated[str, Depends(get_key_name)]
"""The name of the API key the request came with (reviews record it as the reviewer)."""
