"""Leases and the reaper, in one process: renewal while a chunk runs, a run that lost its lease,
reapers running at once, batches left unsettled, `findap reaper --once`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.db.base import utcnow
from app.kernel.models import Batch, Chunk
from app.kernel.models.statuses import BatchStatus, ChunkStage, RunStatus
from tests.faults.faulty_engines import FaultyPolicy, SlowJudge, serve_from_registry
from tests.faults.support import PROMPTS, chunks_of, submit
from workers import chunk_store
from workers.engines import registry
from workers.jobs import run_stage
from workers.reaper import reap
from workers.worker import run_worker


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyPolicy]:
    policy = FaultyPolicy()
    monkeypatch.setitem(registry.ENGINE_FACTORIES, "hf", registry.ENGINE_FACTORIES["hf"])
    serve_from_registry(policy, SlowJudge())
    yield policy
    registry.clear_engine_cache()


def claim(
    session_factory: sessionmaker[Session], chunk_id: int, worker: str, lease_s: float = 60
) -> chunk_store.ChunkWork | None:
    with session_factory.begin() as session:
        return chunk_store.claim_chunk(
            session,
            chunk_id,
            stage=ChunkStage.SAMPLE,
            worker_name=worker,
            lease_s=lease_s,
            max_attempts=3,
        )


def expire_leases(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        session.execute(
            update(Chunk)
            .where(Chunk.status == RunStatus.RUNNING)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_lease_is_renewed_while_a_slow_chunk_runs(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    redis: Redis,
    policy: FaultyPolicy,
) -> None:
    policy.delay_s = 2.5
    batch_id = submit(client, PROMPTS[:4])
    context = ProcessContext.open(settings.model_copy(update={"chunk_lease_s": 1}))
    chunk_id = chunks_of(session_factory, batch_id)[0].id
    outcome: list[object] = []
    runner = threading.Thread(
        target=lambda: outcome.append(run_stage(context, chunk_id, ChunkStage.SAMPLE))
    )
    runner.start()
    time.sleep(0.3)
    first_lease = chunks_of(session_factory, batch_id)[0].lease_expires_at
    time.sleep(1.5)  # longer than the lease: only renewal keeps it
    assert reap(context).expired == 0
    chunk = chunks_of(session_factory, batch_id)[0]
    assert chunk.status == RunStatus.RUNNING
    assert first_lease is not None and chunk.lease_expires_at is not None
    assert chunk.lease_expires_at > first_lease
    runner.join()
    assert outcome == ["sampled"]
    assert chunks_of(session_factory, batch_id)[0].lease_expires_at is None


def test_run_that_lost_its_lease_cannot_finish_the_chunk(
    process: ProcessContext,
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    redis: Redis,
) -> None:
    batch_id = submit(client, PROMPTS[:4])
    chunk_id = chunks_of(session_factory, batch_id)[0].id
    first = claim(session_factory, chunk_id, "worker-a")
    assert first is not None and first.lease.attempt == 1
    assert claim(session_factory, chunk_id, "worker-b") is None  # running: not claimable

    expire_leases(session_factory)
    assert reap(process).expired == 1
    second = claim(session_factory, chunk_id, "worker-b")
    assert second is not None and second.lease.attempt == 2

    with session_factory.begin() as session:
        assert not chunk_store.renew_lease(session, first.lease, lease_s=60)
        assert not chunk_store.finish_chunk(
            session, chunk_id, stats=None, error=None, lease=first.lease
        )
        assert (
            chunk_store.release_after_error(session, first.lease, error="late", max_attempts=3)
            is None
        )
    chunk = chunks_of(session_factory, batch_id)[0]
    assert (chunk.status, chunk.worker_name, chunk.attempts) == ("running", "worker-b", 2)
    assert chunk.error is not None and chunk.error.startswith("sample: lease expired on attempt 1")


def test_reapers_at_once_requeue_an_expired_chunk_once(
    process: ProcessContext,
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    redis: Redis,
    policy: FaultyPolicy,
) -> None:
    batch_id = submit(client, PROMPTS[:4])
    chunk_id = chunks_of(session_factory, batch_id)[0].id
    assert claim(session_factory, chunk_id, "killed-worker") is not None
    redis.flushdb()  # the killed worker's job is gone too
    expire_leases(session_factory)

    reaped = []
    reapers = [threading.Thread(target=lambda: reaped.append(reap(process))) for _ in range(4)]
    for reaper in reapers:
        reaper.start()
    for reaper in reapers:
        reaper.join()
    assert sum(r.expired for r in reaped) == 1
    assert 1 <= sum(r.enqueued for r in reaped) <= 4  # a chunk enqueued twice is claimed once
    assert chunks_of(session_factory, batch_id)[0].attempts == 1

    models = {"policies": ["hf:canned-policy"], "judges": ["hf:canned-judge"]}
    run_worker(settings.model_copy(update=models), burst=True)
    assert policy.calls == [4]  # sampled once
    chunk = chunks_of(session_factory, batch_id)[0]
    assert chunk.status == RunStatus.SUCCEEDED
    assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"


def test_reaper_resends_jobs_redis_lost_and_settles_idle_batches(
    process: ProcessContext,
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    redis: Redis,
) -> None:
    batch_id = submit(client, PROMPTS[:8])
    queue = Queue(f"{settings.queue_name}:sample:hf:canned-policy", connection=redis)
    # A Redis no reaper has marked yet (new, or flushed) may hold nothing: both jobs are sent
    # again, once, and each waits in the queue once.
    assert reap(process).enqueued == 2
    assert queue.count == 2
    assert reap(process).enqueued == 0  # both jobs wait in Redis
    # Jobs lost any other way (a queue emptied by hand) go again once their TTL has run out.
    queue.empty()
    assert reap(process).enqueued == 0
    long_ago = utcnow() - timedelta(seconds=settings.queued_job_ttl_s + 1)
    with session_factory.begin() as session:
        session.execute(update(Chunk).values(enqueued_at=long_ago))
    assert reap(process).enqueued == 2
    assert queue.count == 2

    with session_factory.begin() as session:
        # As if a crash had left the batch unsettled after its last chunk ended.
        session.execute(update(Chunk).values(status=RunStatus.SUCCEEDED))
    assert reap(process).settled == 1
    with session_factory() as session:
        status = session.scalar(select(Batch.status).where(Batch.id == batch_id))
    assert status == BatchStatus.COMPLETED


def test_findap_reaper_once_reports_what_it_did(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.cli import cli
    from app.kernel.config import get_settings

    batch_id = submit(client, PROMPTS[:4])
    assert claim(session_factory, chunks_of(session_factory, batch_id)[0].id, "gone") is not None
    expire_leases(session_factory)
    for name in ("database_url", "redis_url", "queue_name"):
        monkeypatch.setenv(name.upper(), str(getattr(settings, name)))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["reaper", "--once"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "1 expired chunk(s) queued again, 0 failed, 1 enqueued, 0 batch(es) settled" in (
        result.output
    )


def test_a_restart_of_findap_up_requeues_cut_off_chunks_and_fails_those_out_of_attempts(
    client: TestClient, settings: Settings, session_factory: sessionmaker[Session], redis: Redis
) -> None:
    from app.launch import release_cut_off_work

    batch_id = submit(client, PROMPTS[:8])  # two chunks of four
    first_id, last_id = (chunk.id for chunk in chunks_of(session_factory, batch_id))
    assert claim(session_factory, first_id, "up-before-restart") is not None
    for _ in range(settings.chunk_max_attempts):
        assert claim(session_factory, last_id, "up-before-restart") is not None
        with session_factory.begin() as session:  # each run cut off: running again, one more try
            session.execute(
                update(Chunk).where(Chunk.id == last_id).values(status=RunStatus.QUEUED)
            )
    with session_factory.begin() as session:
        session.execute(update(Chunk).where(Chunk.id == last_id).values(status=RunStatus.RUNNING))

    release_cut_off_work(settings)

    first, last = chunks_of(session_factory, batch_id)
    assert (first.status, first.attempts) == (RunStatus.QUEUED, 1)
    assert first.error == "sample: cut off on attempt 1 (findap was stopped)"
    assert (last.status, last.attempts) == (RunStatus.FAILED, settings.chunk_max_attempts)
    assert last.error == (
        "sample: cut off on attempt 3 (findap was stopped) (gave up after 3 of 3 attempts)"
    )
