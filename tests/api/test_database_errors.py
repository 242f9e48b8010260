"""Database failures answer 503 with Retry-After (or 409/422 where the request met a conflict or
carried a value Postgres refuses), never 500, and the server logs each one."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import func, select, text

from app.kernel.config import Settings
from app.main import create_app
from tests.api.stored_pairs import PairSpec, store_pairs
from tests.conftest import api_key, bearer, project_id


def test_a_pool_timeout_is_a_503_with_retry_after_and_is_logged(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    tiny_pool = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_s": 0.5}
    )
    headers = bearer(api_key(session_factory))
    with TestClient(create_app(tiny_pool), headers=headers) as client:
        assert client.get("/v1/batches").status_code == 200
        with client.app.state.session_factory() as holder:  # type: ignore[attr-defined]
            holder.connection()  # the pool's one connection, taken
            response = client.get("/v1/batches")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json() == {"detail": "database busy, retry shortly"}
        assert client.get("/v1/batches").status_code == 200  # given back: served again
    assert "GET /v1/batches: no database connection free within 0.5 s" in caplog.text


def waiting_on_a_lock(session_factory) -> int:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )


def test_a_real_deadlock_is_a_503_and_is_logged(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch_id = store_pairs(session_factory, project_id(session_factory), [PairSpec()])
    dataset_lock = func.hashtext(f"{project_id(session_factory)}/locked")
    with session_factory() as holder, ThreadPoolExecutor(1) as pool:
        # Postgres breaks a deadlock by failing one side: the API's, which waits first.
        holder.execute(text("SET deadlock_timeout = '30s'"))
        holder.execute(text("SELECT id FROM preference_pairs FOR UPDATE"))
        # The API takes the dataset name's lock, then waits for the pair the holder locked...
        answer = pool.submit(
            client.post, "/v1/datasets", json={"name": "locked", "batch_ids": [batch_id]}
        )
        give_up = time.monotonic() + 20
        while not waiting_on_a_lock(session_factory):
            assert time.monotonic() < give_up and not answer.done(), "the API never waited"
            time.sleep(0.02)
        # ...and the holder now waits for the API's lock: a deadlock.
        holder.execute(select(func.pg_advisory_xact_lock(dataset_lock)))
        response = answer.result(timeout=30)
        holder.rollback()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {"detail": "database unavailable, retry shortly"}
    assert "POST /v1/datasets: database unavailable: deadlock detected" in caplog.text


@contextmanager
def failing_dataset_inserts(session_factory, sqlstate: str) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every INSERT into datasets fails in Postgres with this SQLSTATE, until the block ends."""
    with session_factory.begin() as session:
        session.execute(
            text(
                "CREATE FUNCTION fail_dataset_insert() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION 'refused by test' USING ERRCODE = '{sqlstate}'; END $$"
            )
        )
        session.execute(
            text(
                "CREATE TRIGGER fail_dataset_insert BEFORE INSERT ON datasets "
                "FOR EACH ROW EXECUTE FUNCTION fail_dataset_insert()"
            )
        )
    try:
        yield
    finally:
        with session_factory.begin() as session:
            session.execute(text("DROP TRIGGER fail_dataset_insert ON datasets"))
            session.execute(text("DROP FUNCTION fail_dataset_insert()"))


@pytest.mark.parametrize(
    ("sqlstate", "status", "detail", "level"),
    [
        ("40001", 503, "database unavailable, retry shortly", logging.WARNING),  # serialization
        ("57014", 503, "database unavailable, retry shortly", logging.WARNING),  # query cancelled
        ("XX000", 503, "database error, retry shortly", logging.ERROR),  # internal error
        ("42501", 503, "database error, retry shortly", logging.ERROR),  # permission denied
        ("23505", 409, "request: it conflicts with a change made meanwhile; retry it", None),
        ("22P02", 422, "request: a value cannot be stored (refused by test)", None),
    ],
)
def test_every_database_error_has_its_answer_and_none_is_a_500(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
    sqlstate: str,
    status: int,
    detail: str,
    level: int | None,
) -> None:
    caplog.set_level(logging.INFO, logger="app.main")
    batch_id = store_pairs(session_factory, project_id(session_factory), [PairSpec()])
    with failing_dataset_inserts(session_factory, sqlstate):
        response = client.post("/v1/datasets", json={"name": "refused", "batch_ids": [batch_id]})
    assert response.status_code == status, response.text
    assert response.json() == {"detail": detail}
    if status == 503:
        assert response.headers["Retry-After"] == "5"
    logged = [record for record in caplog.records if record.name == "app.main"]
    assert logged and "POST /v1/datasets" in logged[-1].getMessage()
    if level is not None:
        assert logged[-1].levelno == level


def test_a_download_whose_first_page_fails_is_a_503_not_a_200_cut_short(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
    redis: Redis,
    settings: Settings,
) -> None:
    batch_id = store_pairs(session_factory, project_id(session_factory), [PairSpec()])
    with session_factory.begin() as session:  # the batch is found; its pages cannot be read
        session.execute(text("ALTER TABLE prompts RENAME TO prompts_away"))
    try:
        response = client.get(f"/v1/batches/{batch_id}/pairs")
    finally:
        with session_factory.begin() as session:
            session.execute(text("ALTER TABLE prompts_away RENAME TO prompts"))
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": "database error, retry shortly"}
    assert not redis.zcard(f"{settings.queue_name}:downloads:{project_id(session_factory)}")
