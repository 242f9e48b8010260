"""A worker SIGKILLed mid-chunk: its lease runs out, the reaper re-queues the chunk, another
worker resumes it from what was stored, and every row is stored once."""

from __future__ import annotations

import socket
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import Settings
from app.kernel.models import Chunk, Verdict
from app.kernel.models.statuses import ChunkStage, RunStatus
from tests.faults.support import (
    EXPECTED_ROWS,
    WorkerProcess,
    chunks_of,
    finished,
    stored_rows,
    submit,
    wait_for,
)


def judging_with_verdicts_stored(
    session_factory: sessionmaker[Session], batch_id: str, worker: WorkerProcess
) -> int | None:
    """A chunk this worker is judging, half-way: some of its verdicts already stored."""
    with session_factory() as session:
        return session.scalar(
            select(Chunk.id).where(
                Chunk.batch_id == batch_id,
                Chunk.status == RunStatus.RUNNING,
                Chunk.stage == ChunkStage.JUDGE,
                Chunk.worker_name == f"{socket.gethostname()}:{worker.pid}",
                select(func.count())
                .select_from(Verdict)
                .where(Verdict.batch_id == batch_id)
                .scalar_subquery()
                > 0,
            )
        )


def test_worker_killed_mid_chunk_batch_completes_with_each_row_stored_once(
    client: TestClient,
    fault_settings: Settings,
    session_factory: sessionmaker[Session],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    batch_id = submit(client)
    first = start_worker(fault_settings, policy_delay_s=0.5, judge_delay_s=1.0)
    chunk_id = wait_for(
        lambda: judging_with_verdicts_stored(session_factory, batch_id, first),
        timeout_s=15,
        what="the first worker to be judging a chunk, with verdicts stored",
    )
    first.kill()

    second = start_worker(fault_settings)
    status = wait_for(
        lambda: finished(session_factory, batch_id), timeout_s=20, what="the batch to finish"
    )
    assert status == "completed", second.log_tail()
    assert stored_rows(session_factory, batch_id) == EXPECTED_ROWS
    killed = next(c for c in chunks_of(session_factory, batch_id) if c.id == chunk_id)
    assert killed.status == "succeeded"
    assert killed.attempts == 2  # the killed judge run, then the second worker's
    assert killed.worker_name == f"{socket.gethostname()}:{second.pid}"
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["request_counts"] == {"total": 12, "completed": 12, "failed": 0}
    assert batch["pair_counts"] == {"fap": 12, "scp": 12, "total": 24}


def test_chunk_that_kills_every_worker_fails_after_max_attempts(
    client: TestClient,
    fault_settings: Settings,
    session_factory: sessionmaker[Session],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    batch_id = submit(client)
    deaths = 0

    def restart_dead_worker_until_finished() -> str | None:
        nonlocal worker, deaths
        if not worker.alive():
            deaths += 1
            worker = start_worker(fault_settings, kill_on="(case 05)")
        return finished(session_factory, batch_id)

    worker = start_worker(fault_settings, kill_on="(case 05)")
    status = wait_for(restart_dead_worker_until_finished, timeout_s=30, what="the batch to finish")

    assert status == "completed"
    assert deaths == 3  # one per attempt: then the reaper gives the chunk up
    poison = chunks_of(session_factory, batch_id)[1]  # prompts 4-7
    assert poison.status == RunStatus.FAILED
    assert poison.attempts == 3
    assert poison.error is not None
    assert "lease expired on attempt 3" in poison.error
    assert poison.error.endswith("(gave up after 3 of 3 attempts)")
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["request_counts"] == {"total": 12, "completed": 8, "failed": 4}
    assert batch["error"].startswith("1 chunk(s) failed; first error: sample: lease expired")
