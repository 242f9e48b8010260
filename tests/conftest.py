"""Test fixtures on real services: a fresh Postgres database per run and a real Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from app.kernel.config import Settings  # noqa: E402
from app.kernel.context import ProcessContext, set_process_context  # noqa: E402
from app.kernel.db.base import Base  # noqa: E402
from app.kernel.db.migrate import upgrade_database  # noqa: E402
from app.kernel.db.session import make_engine, make_session_factory  # noqa: E402
from app.kernel.queue import live_worker_seen_at  # noqa: E402
from app.main import create_app  # noqa: E402
from app.services.api_keys import create_key, project_named  # noqa: E402

ADMIN_DATABASE_URL = os.environ.get(
    "FINDAP_TEST_ADMIN_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("FINDAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
MODEL_CACHE = Path(
    os.environ.get("FINDAP_TEST_MODEL_CACHE", Path.home() / ".cache" / "findap-test-models")
)


TEST_MODELS = {
    **{
        name: name
        for name in (
            "canned-policy",
            "canned-judge",
            "continuing-policy",
            "other-step-judge",
            "cutting-policy",
            "another-policy",
            "no-step-judge",
            "gpt-judge",
            "not-served-yet",
            "org/base",
        )
    },
    "missing-model": "/nonexistent/model-folder",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
}
"""Models of the tests, offered as configured base models (a batch may name only models of the
allow-list: registered, configured, the project's own trained ones): names the canned engines
serve, one whose folder is missing, and a hub id."""


def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tiny model of this run lives (built by the tiny_model_dir fixture)."""
    return tmp_path_factory.getbasetemp() / "tiny-model"


def plain_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of its own for this test run, migrated to head, dropped afterwards."""
    name = f"findap_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain_url(ADMIN_DATABASE_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    upgrade_database(url)
    yield url
    with psycopg.connect(plain_url(ADMIN_DATABASE_URL), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tiny_model = str(tiny_model_path(tmp_path_factory))
    return Settings(
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        data_dir=tmp_path_factory.mktemp("data"),
        models_dir=MODEL_CACHE,
        queue_name=f"findap-test-{uuid.uuid4().hex[:8]}",
        chunk_size=4,
        min_chunk_size=1,  # a few prompts make several chunks: the tests stay small and quick
        judge_retries=1,
        # The tiny model is offered under its folder's name, as `findap up --policy hf:FOLDER`
        # offers an operator's folder.
        base_models={**TEST_MODELS, tiny_model: tiny_model},
    )


@pytest.fixture
def redis(settings: Settings) -> Iterator[Redis]:
    connection = Redis.from_url(settings.redis_url)  # type: ignore[arg-type]
    connection.flushdb()
    live_worker_seen_at.clear()  # what this process remembers of the flushed Redis goes with it
    yield connection
    connection.flushdb()
    live_worker_seen_at.clear()
    connection.close()


@pytest.fixture
def process(settings: Settings, redis: Redis) -> Iterator[ProcessContext]:
    """This process's context on the test database and Redis, as a worker sets it up."""
    with ProcessContext.open(settings) as context:
        yield set_process_context(context)


@pytest.fixture(scope="session")
def session_factory(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(autouse=True)
def empty_tables(request: pytest.FixtureRequest) -> None:
    """Each test that touches the database starts from empty tables."""
    if "database_url" not in request.fixturenames:
        return
    factory = request.getfixturevalue("session_factory")
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with factory.begin() as session:
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def api_key(session_factory, project: str = "test") -> str:  # type: ignore[no-untyped-def]
    """A new API key of this project (made if need be)."""
    with session_factory.begin() as session:
        return create_key(session, project=project, name="tests").secret


def project_id(session_factory, project: str = "test") -> str:  # type: ignore[no-untyped-def]
    """The id of this project (made if need be)."""
    with session_factory.begin() as session:
        return project_named(session, project).id


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The API, authenticated as a key of the project `test`."""
    headers = bearer(api_key(session_factory))
    with TestClient(create_app(settings), headers=headers) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random two-layer Llama with its own tokenizer, built in a second or two."""
    from tests.tiny_model import build_tiny_model

    folder = tiny_model_path(tmp_path_factory)
    folder.mkdir(exist_ok=True)
    return build_tiny_model(folder)
