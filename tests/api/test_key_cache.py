"""The API process trusts a key it found live for API_KEY_CACHE_S seconds, no longer."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import select, update

from app.kernel.config import Settings
from app.kernel.db.base import utcnow
from app.kernel.models import ApiKey
from app.main import create_app
from app.services.api_keys import hash_key, revoke_key
from tests.conftest import api_key, bearer, project_id


def revoke_elsewhere(session_factory, key: str) -> None:  # type: ignore[no-untyped-def]
    """Revoke the key as another process would: in the database only."""
    with session_factory.begin() as session:
        session.execute(
            update(ApiKey).where(ApiKey.key_hash == hash_key(key)).values(revoked_at=utcnow())
        )


def test_a_key_revoked_elsewhere_works_until_the_cache_expires_then_answers_403(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    key = api_key(session_factory)
    app = create_app(settings.model_copy(update={"api_key_cache_s": 0.5}))
    with TestClient(app, headers=bearer(key)) as client:
        assert client.get("/v1/batches").status_code == 200
        revoke_elsewhere(session_factory, key)
        assert client.get("/v1/batches").status_code == 200  # still within the cache's 0.5 s
        time.sleep(0.6)
        refused = client.get("/v1/batches")
        assert refused.status_code == 403
        assert refused.json()["detail"].endswith("was revoked")


def test_without_a_cache_a_key_revoked_elsewhere_is_refused_at_once(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    key = api_key(session_factory)
    app = create_app(settings.model_copy(update={"api_key_cache_s": 0}))
    with TestClient(app, headers=bearer(key)) as client:
        assert client.get("/v1/batches").status_code == 200
        revoke_elsewhere(session_factory, key)
        assert client.get("/v1/batches").status_code == 403


def test_a_key_revoked_in_this_process_is_refused_at_once_despite_the_cache(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    key = api_key(session_factory)
    app = create_app(settings.model_copy(update={"api_key_cache_s": 60}))
    with TestClient(app, headers=bearer(key)) as client:
        assert client.get("/v1/batches").status_code == 200
        with session_factory.begin() as session:
            key_id = session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key)))
            revoke_key(session, key_id or "")
        assert client.get("/v1/batches").status_code == 403


def test_an_unknown_key_is_never_cached(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/batches", headers=bearer("fdp_not-yet")).status_code == 401
        with session_factory.begin() as session:
            session.add(
                ApiKey(
                    project_id=project_id(session_factory),
                    name="late",
                    prefix="fdp_not-yet"[:12],
                    key_hash=hash_key("fdp_not-yet"),
                )
            )
        assert client.get("/v1/batches", headers=bearer("fdp_not-yet")).status_code == 200
