"""The queue carries JSON ids that expire, the reaper reads only what it must, cancel and claims
lock in one order, and a run that lost its lease makes no further model call."""

from __future__ import annotations

import json
import random
import threading
import zlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import Settings
from app.kernel.context import ProcessContext, process_context
from app.kernel.db.session import make_engine, make_session_factory
from app.kernel.models import Batch, Chunk
from app.kernel.models.statuses import ChunkStage
from app.main import create_app
from app.services import batches as batch_service
from tests.conftest import api_key, bearer, project_id
from tests.faults.support import chunks_of, wait_for
from tests.workers.canned_engines import CannedJudge, CannedPolicy
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve_canned,
    submit,
)
from workers import chunk_store
from workers.jobs import sample_missing_answers
from workers.lease import LeaseKeeper, LeaseLostError
from workers.reaper import reap

RAN_KEY = "test:pickled-job-ran"


def mark_ran() -> None:
    """A job function that leaves a mark in Redis if it ever runs."""
    process_context().redis.set(RAN_KEY, "1")


def batch_status(client: TestClient, batch_id: str) -> str:
    return str(client.get(f"/v1/batches/{batch_id}").json()["status"])


def test_queued_jobs_are_json_and_a_pickled_job_never_runs(
    client: TestClient,
    settings: Settings,
    redis: Redis,
    session_factory: sessionmaker[Session],
    canned: tuple[CannedPolicy, CannedJudge],  # noqa: F811
) -> None:
    batch_id = submit(client, PROMPTS[:4], **CANNED_OPTIONS)
    chunk_id = chunks_of(session_factory, batch_id)[0].id
    stored = redis.hget(f"rq:job:chunk-{chunk_id}-sample", "data")
    assert isinstance(stored, bytes)
    assert json.loads(zlib.decompress(stored)) == [
        "workers.jobs.sample_chunk",
        None,
        [chunk_id],
        {},
    ]
    # Someone with access to Redis pushes a pickled job onto a worker's queue.
    sample_queue = f"{settings.queue_name}:sample:hf:canned-policy"
    Queue(sample_queue, connection=redis).enqueue(f"{__name__}.mark_ran", job_id="pickled")
    pickled = redis.hget("rq:job:pickled", "data")
    assert isinstance(pickled, bytes) and zlib.decompress(pickled)[:1] == b"\x80"  # a pickle

    serve_canned(settings)
    assert batch_status(client, batch_id) == "completed"
    assert not redis.exists(RAN_KEY)
    assert redis.hget("rq:job:pickled", "status") == b"failed"


def test_an_expired_queued_job_is_sent_again_by_the_reaper_and_its_chunk_completes(
    settings: Settings,
    redis: Redis,
    session_factory: sessionmaker[Session],
    canned: tuple[CannedPolicy, CannedJudge],  # noqa: F811
) -> None:
    short = settings.model_copy(update={"queued_job_ttl_s": 2})
    headers = bearer(api_key(session_factory))
    with (
        ProcessContext.open(short) as reaper,
        TestClient(create_app(short), headers=headers) as api,
    ):
        reap(reaper)  # marks this Redis: from now on only unconfirmed or expired jobs go again
        batch_id = submit(api, PROMPTS[:4], **CANNED_OPTIONS)
        chunk = chunks_of(session_factory, batch_id)[0]
        assert chunk.enqueued_at is not None  # the API confirmed it
        job_id = f"chunk-{chunk.id}-sample"
        queue_key = f"rq:queue:{short.queue_name}:sample:hf:canned-policy"
        assert 0 < redis.pttl(f"rq:job:{job_id}") <= 2000
        assert reap(reaper).enqueued == 0  # it waits in Redis

        wait_for(
            lambda: not redis.exists(f"rq:job:{job_id}"), timeout_s=5, what="the job to expire"
        )
        assert redis.lrange(queue_key, 0, -1) == [job_id.encode()]  # RQ leaves its id behind
        resent = wait_for(
            lambda: reap(reaper).enqueued, timeout_s=5, what="the reaper to send it again"
        )
        assert resent == 1
        assert redis.lrange(queue_key, 0, -1) == [job_id.encode()]  # once, not twice
        assert redis.exists(f"rq:job:{job_id}")

        serve_canned(short)
        assert batch_status(api, batch_id) == "completed"


SCAN_NODES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")


def rows_read(plan: dict[str, Any]) -> int:
    """Rows the scans of an EXPLAIN ANALYZE plan read: those they returned and those they
    read and dropped, over all their loops."""
    own = 0
    if plan["Node Type"] in SCAN_NODES:
        per_loop = (
            plan["Actual Rows"]
            + plan.get("Rows Removed by Filter", 0)
            + plan.get("Rows Removed by Index Recheck", 0)
        )
        own = per_loop * plan["Actual Loops"]
    return own + sum(rows_read(child) for child in plan.get("Plans", []))


def reaper_pass_cost(context: ProcessContext) -> tuple[int, int]:
    """One reaper pass: the statements it sent to Postgres, and the rows its reads read."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(context.engine, "before_cursor_execute", record)
    try:
        reap(context)
    finally:
        event.remove(context.engine, "before_cursor_execute", record)
    read = 0
    with context.engine.connect() as connection:
        for statement, parameters in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                explain = "EXPLAIN (ANALYZE, FORMAT JSON) " + statement
                plan = connection.exec_driver_sql(explain, parameters).scalar_one()
                read += rows_read(plan[0]["Plan"])
    return len(statements), read


def test_a_reaper_pass_reads_no_more_with_thousands_of_queued_chunks(
    process: ProcessContext,
    client: TestClient,
    session_factory: sessionmaker[Session],
) -> None:
    def queue_batch(prompts: int) -> str:
        questions = [{**PROMPTS[0], "id": f"p{i}"} for i in range(prompts)]
        batch_id = submit(client, questions, judge={"engine": "rule"}, chunk_size=1)
        with session_factory.begin() as session:
            session.execute(text("ANALYZE chunks"))
            session.execute(text("ANALYZE batches"))
        reap(process)  # a new Redis: the first pass sends everything once
        return batch_id

    few = queue_batch(10)
    few_statements, few_read = reaper_pass_cost(process)
    assert client.post(f"/v1/batches/{few}/cancel").status_code == 200
    queue_batch(3000)
    many_statements, many_read = reaper_pass_cost(process)
    print(
        f"reaper pass: 10 queued chunks: {few_statements} statements, {few_read} rows read; "
        f"3000 queued chunks: {many_statements} statements, {many_read} rows read"
    )
    assert many_statements == few_statements
    assert many_read <= few_read + 1 and many_read < 10


def race_cancel_against_claims(
    session_factory: sessionmaker[Session], batch_id: str, project: str, chunk_ids: list[int]
) -> tuple[list[int], list[BaseException]]:
    """Cancel the batch while four workers claim its chunks, each in its own order, all
    starting at once; the chunks claimed, and what raised."""
    start = threading.Barrier(5)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def claim_all(order: list[int], worker: str) -> None:
        start.wait()
        for chunk_id in order:
            try:
                with session_factory.begin() as session:
                    work = chunk_store.claim_chunk(
                        session,
                        chunk_id,
                        stage=ChunkStage.SAMPLE,
                        worker_name=worker,
                        lease_s=60,
                        max_attempts=3,
                    )
                if work is not None:
                    claimed.append(chunk_id)
            except Exception as error:
                errors.append(error)

    def cancel() -> None:
        start.wait()
        try:
            with session_factory.begin() as session:
                batch_service.cancel_batch(session, batch_id, project_id=project)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=cancel)] + [
        threading.Thread(target=claim_all, args=(random.sample(chunk_ids, len(chunk_ids)), f"w{n}"))
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return claimed, errors


def test_cancel_and_claims_at_once_neither_deadlock_nor_lose_a_chunk(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    project = project_id(session_factory)
    questions = [{**PROMPTS[0], "id": f"p{i}"} for i in range(8)]
    for round_ in range(15):
        batch_id = submit(client, questions, judge={"engine": "rule"}, chunk_size=1)
        chunk_ids = [chunk.id for chunk in chunks_of(session_factory, batch_id)]
        claimed, errors = race_cancel_against_claims(session_factory, batch_id, project, chunk_ids)
        assert errors == [], f"round {round_}: {errors}"
        statuses = {chunk.id: chunk.status for chunk in chunks_of(session_factory, batch_id)}
        assert sorted(claimed) == sorted(i for i, s in statuses.items() if s == "running")
        assert set(statuses.values()) <= {"running", "cancelled"}
        with session_factory() as session:
            status = session.scalar(select(Batch.status).where(Batch.id == batch_id))
        assert status == ("cancelling" if claimed else "cancelled")
        with session_factory.begin() as session:  # the next round starts with no open batch
            session.execute(text("UPDATE chunks SET status = 'cancelled'"))
            session.execute(text("UPDATE batches SET status = 'cancelled'"))


def test_a_run_that_could_not_renew_its_lease_for_a_lease_makes_no_model_call(
    process: ProcessContext,
    client: TestClient,
    session_factory: sessionmaker[Session],
    canned: tuple[CannedPolicy, CannedJudge],  # noqa: F811
) -> None:
    policy, _ = canned
    batch_id = submit(client, PROMPTS[:4], **CANNED_OPTIONS)
    chunk_id = chunks_of(session_factory, batch_id)[0].id
    with session_factory.begin() as session:
        work = chunk_store.claim_chunk(
            session,
            chunk_id,
            stage=ChunkStage.SAMPLE,
            worker_name="cut-off",
            lease_s=1,
            max_attempts=3,
        )
    assert work is not None
    # This worker's Postgres stops answering (a restart, a partition): every renewal fails.
    unreachable = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/findap")
    try:
        with LeaseKeeper(make_session_factory(unreachable), work.lease, lease_s=1) as lease:
            assert lease.holds()
            wait_for(lambda: not lease.holds(), timeout_s=3, what="the lease to run out")
            with pytest.raises(LeaseLostError, match=f"chunk {chunk_id}: lease of attempt 1"):
                sample_missing_answers(process, work, lease=lease)
    finally:
        unreachable.dispose()
    assert policy.calls == []
    with session_factory() as session:  # the chunk is the reaper's to hand on
        assert session.scalar(select(Chunk.status).where(Chunk.id == chunk_id)) == "running"


def test_a_lease_whose_renewals_were_late_is_renewed_before_the_model_call(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    batch_id = submit(client, PROMPTS[:4], **CANNED_OPTIONS)
    chunk_id = chunks_of(session_factory, batch_id)[0].id
    with session_factory.begin() as session:
        work = chunk_store.claim_chunk(
            session,
            chunk_id,
            stage=ChunkStage.SAMPLE,
            worker_name="starved",
            lease_s=60,
            max_attempts=3,
        )
    assert work is not None
    with LeaseKeeper(session_factory, work.lease, lease_s=60) as lease:
        lease.renewed_at -= 61  # as if its renewing thread had not run for a whole lease
        assert not lease.holds()
        lease.check()  # Postgres answers and the chunk is still this run's: renewed, kept
        assert lease.holds()
