"""Routing chunk ids to RQ queues: one queue per stage and model, so workers take only what
they serve. Postgres stays the record of what work exists; Redis only carries it.

Every job is JSON (ids only, never objects): RQ's JSONSerializer on every queue, worker and
fetch, so a job that is not JSON (a pickle someone pushed) fails to load and never runs."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import tuple_, update
from sqlalchemy.orm import Session

from app.kernel.batch_options import JudgeOptions, PolicyOptions
from app.kernel.db.base import utcnow
from app.kernel.models import Chunk
from app.kernel.models.statuses import ChunkStage, RunStatus

JOB_SERIALIZER = JSONSerializer
"""How every findap job is stored in Redis: JSON, never pickle."""

JOB_FUNCTIONS = {
    ChunkStage.SAMPLE: "workers.jobs.sample_chunk",
    ChunkStage.JUDGE: "workers.jobs.judge_chunk",
}


@dataclass(frozen=True)
class ModelRef:
    """A model as a worker serves it: `engine:model`, e.g. `hf:smollm2-135m-instruct`."""

    engine: str
    model: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        engine, sep, model = text.partition(":")
        if not sep or not engine or not model:
            raise ValueError(
                f"model: expected ENGINE:MODEL such as hf:smollm2-135m-instruct, got {text!r}"
            )
        return cls(engine, model)

    @classmethod
    def of(cls, options: PolicyOptions | JudgeOptions) -> ModelRef:
        """The model a batch's policy or judge options name."""
        return cls(options.engine, options.model)

    def __str__(self) -> str:
        return f"{self.engine}:{self.model}"


@dataclass(frozen=True)
class ChunkRoute:
    chunk_id: int
    stage: ChunkStage
    model: ModelRef


def job_queue(name: str, connection: Redis) -> Queue:
    """An RQ queue of findap's, whose jobs are JSON."""
    return Queue(name, connection=connection, serializer=JOB_SERIALIZER)


def queue_name(prefix: str, stage: ChunkStage, model: ModelRef) -> str:
    return f"{prefix}:{stage}:{model}"


def chunk_job_id(chunk_id: int, stage: ChunkStage) -> str:
    return f"chunk-{chunk_id}-{stage}"


def by_queue(prefix: str, routes: Iterable[ChunkRoute]) -> dict[str, list[ChunkRoute]]:
    """These chunks grouped by the queue each waits in."""
    grouped: dict[str, list[ChunkRoute]] = {}
    for route in routes:
        grouped.setdefault(queue_name(prefix, route.stage, route.model), []).append(route)
    return grouped


def enqueue_chunks(
    connection: Redis,
    prefix: str,
    routes: Iterable[ChunkRoute],
    *,
    timeout_s: int,
    ttl_s: int,
    resend: bool = False,
) -> int:
    """Enqueue one job per chunk on its stage's model queue, in one Redis transaction. An
    unclaimed job expires after ttl_s (the reaper sends its chunk again while Postgres has it
    queued). `resend`: these chunks waited already (their job expired or was lost), so each
    goes to the front of its queue, and an id of theirs left in the queue is taken out first."""
    grouped = by_queue(prefix, routes)
    if not grouped:
        return 0
    with connection.pipeline() as pipe:
        for name, queued in grouped.items():
            queue = job_queue(name, connection)
            if resend:
                for route in queued:
                    pipe.lrem(queue.key, 0, chunk_job_id(route.chunk_id, route.stage))
            queue.enqueue_many(
                [
                    Queue.prepare_data(
                        JOB_FUNCTIONS[route.stage],
                        args=(route.chunk_id,),
                        job_id=chunk_job_id(route.chunk_id, route.stage),
                        timeout=timeout_s,
                        ttl=ttl_s,
                        result_ttl=3600,
                        failure_ttl=7 * 24 * 3600,
                        at_front=resend,
                    )
                    # Pushed one by one onto the front: the last pushed comes out first.
                    for route in (reversed(queued) if resend else queued)
                ],
                pipeline=pipe,
            )
        pipe.execute()
    return sum(len(queued) for queued in grouped.values())


def mark_enqueued(session: Session, routes: Iterable[ChunkRoute]) -> None:
    """Record in Postgres that these chunks' jobs are in Redis (their `enqueued_at`), for those
    still queued at that stage: one that moved on meanwhile keeps its own state."""
    sent = [(route.chunk_id, str(route.stage)) for route in routes]
    now = utcnow()
    for start in range(0, len(sent), MARKED_PER_STATEMENT):
        session.execute(
            update(Chunk)
            .where(
                Chunk.status == RunStatus.QUEUED,
                tuple_(Chunk.id, Chunk.stage).in_(sent[start : start + MARKED_PER_STATEMENT]),
            )
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )


MARKED_PER_STATEMENT = 10_000
"""Chunks confirmed per UPDATE: two parameters each, well under Postgres's 65,535."""


def delete_queued_jobs(connection: Redis, prefix: str, routes: Iterable[ChunkRoute]) -> None:
    """Take these chunks' jobs out of their queues and delete them (a cancelled batch's), and
    forget a queue they leave empty, in one Redis transaction."""
    grouped = by_queue(prefix, routes)
    if not grouped:
        return
    forget_if_empty = connection.register_script(FORGET_EMPTY_QUEUE)
    with connection.pipeline() as pipe:
        for name, queued in grouped.items():
            queue_key = job_queue(name, connection).key
            for route in queued:
                job_id = chunk_job_id(route.chunk_id, route.stage)
                pipe.lrem(queue_key, 0, job_id)
                pipe.delete(Job.key_for(job_id))
            forget_if_empty(keys=[queue_key, Queue.redis_queues_keys], client=pipe)
        pipe.execute()


FORGET_EMPTY_QUEUE = """
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], KEYS[1]) end
"""
"""Drop a queue left empty from RQ's set of queues (RQ adds it back on its next enqueue): a
cancelled batch leaves no queue of its own behind."""


def redis_intact_key(prefix: str) -> str:
    """Set by the reaper, never expiring: gone when Redis lost its data (flushed, or restarted
    without persistence), which makes the next pass send every queued chunk again."""
    return f"{prefix}:reaper:redis-intact"


LIVE_WORKER_TRUSTED_S = 2.0
"""How long a process trusts that a queue has a live worker once it saw one."""
live_worker_seen_at: dict[str, float] = {}
"""Queue name -> time.monotonic() a live worker was last seen on it."""


def follower_key(prefix: str, engine: str) -> str:
    """Set while a worker serves every model of this engine that work is queued for (a
    workers.following_worker.FollowingWorker, e.g. `findap up`'s), expiring with its heartbeat."""
    return f"{prefix}:follower:{engine}"


def has_live_worker(connection: Redis, prefix: str, stage: ChunkStage, model: ModelRef) -> bool:
    """Whether a live worker listens on this stage's queue for this model, or serves every
    model of its engine (and will listen on the queue within seconds).

    Polls ask this of every unfinished batch: a yes is trusted for LIVE_WORKER_TRUSTED_S (a worker
    that stops shows as gone that much later), a no is asked again each time (a worker that
    starts shows at once)."""
    name = queue_name(prefix, stage, model)
    seen = live_worker_seen_at.get(name)
    if seen is not None and time.monotonic() - seen < LIVE_WORKER_TRUSTED_S:
        return True
    if (
        Worker.count(connection=connection, queue=job_queue(name, connection)) > 0
        or connection.exists(follower_key(prefix, model.engine)) > 0
    ):
        live_worker_seen_at[name] = time.monotonic()
        return True
    live_worker_seen_at.pop(name, None)
    return False


TRAINING_JOB_FUNCTION = "training.supervisor.run_training_job"


def training_queue_name(prefix: str) -> str:
    """One queue for every training job; `findap train-worker` listens on it."""
    return f"{prefix}:train"


def training_rq_job_id(job_id: str) -> str:
    return f"training-{job_id}"


def enqueue_training_job(connection: Redis, prefix: str, job_id: str) -> None:
    """Hand a training job to the train workers; a job can run for days, so no RQ timeout."""
    job_queue(training_queue_name(prefix), connection).enqueue(
        TRAINING_JOB_FUNCTION,
        job_id,
        job_id=training_rq_job_id(job_id),
        job_timeout=-1,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
    )


def training_job_in_queue(connection: Redis, job_id: str) -> bool:
    """Whether this training job waits or runs in Redis."""
    job = Job.fetch_many(
        [training_rq_job_id(job_id)], connection=connection, serializer=JOB_SERIALIZER
    )[0]
    return job is not None and job.get_status(refresh=False) in ("queued", "started")
