"""Putting chunk ids on the RQ queue; Postgres stays the record of what work exists."""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis
from rq import Queue
from rq.job import Job

PROCESS_CHUNK = "workers.jobs.process_chunk"


def chunk_job_id(chunk_id: int) -> str:
    return f"chunk-{chunk_id}"


def chunk_queue(connection: Redis, name: str) -> Queue:
    return Queue(name, connection=connection)


def enqueue_chunks(queue: Queue, chunk_ids: Iterable[int], *, timeout_s: int) -> int:
    """Enqueue one job per chunk in a single Redis round trip; returns how many."""
    job_datas = [
        Queue.prepare_data(
            PROCESS_CHUNK,
            args=(chunk_id,),
            job_id=chunk_job_id(chunk_id),
            timeout=timeout_s,
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
        )
        for chunk_id in chunk_ids
    ]
    if not job_datas:
        return 0
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many(job_datas, pipeline=pipe)
        pipe.execute()
    return len(job_datas)


def chunk_ids_in_queue(queue: Queue, chunk_ids: Iterable[int]) -> set[int]:
    """Which of these chunks have a job waiting or running in Redis."""
    ids = list(chunk_ids)
    jobs = Job.fetch_many([chunk_job_id(i) for i in ids], connection=queue.connection)
    return {
        chunk_id
        for chunk_id, job in zip(ids, jobs, strict=True)
        if job is not None and job.get_status(refresh=False) in ("queued", "started")
    }
