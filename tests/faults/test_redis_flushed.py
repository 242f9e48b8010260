"""Redis flushed mid-batch (or restarted without persistence): the queued jobs are gone, but
Postgres still has their chunks queued, so the worker's reaper sends them again."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import Settings
from app.kernel.models.statuses import RunStatus
from tests.faults.support import (
    EXPECTED_ROWS,
    WorkerProcess,
    chunks_of,
    finished,
    stored_rows,
    submit,
    wait_for,
)


def test_redis_flushed_mid_batch_batch_still_completes(
    client: TestClient,
    fault_settings: Settings,
    session_factory: sessionmaker[Session],
    redis: Redis,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    batch_id = submit(client)
    worker = start_worker(fault_settings, policy_delay_s=0.5, judge_delay_s=0.5)
    wait_for(
        lambda: chunks_of(session_factory, batch_id)[0].stage == "judge",
        timeout_s=15,
        what="the first chunk to be sampled",
    )
    queued = [c.id for c in chunks_of(session_factory, batch_id) if c.status == RunStatus.QUEUED]
    assert len(queued) >= 2  # their jobs wait in Redis...
    redis.flushdb()  # ...and are gone

    status = wait_for(
        lambda: finished(session_factory, batch_id), timeout_s=20, what="the batch to finish"
    )
    assert status == "completed", worker.log_tail()
    assert worker.alive()
    assert stored_rows(session_factory, batch_id) == EXPECTED_ROWS
    assert "re-enqueuing" in worker.log_path.read_text()
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["request_counts"] == {"total": 12, "completed": 12, "failed": 0}
