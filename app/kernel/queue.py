"""Routing chunk ids to RQ queues: one queue per stage and model, so workers take only what
they serve. Postgres stays the record of what work exists; Redis only carries it."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis
from rq import Queue, Worker
from rq.job import Job

from app.kernel.batch_options import JudgeOptions, PolicyOptions
from app.kernel.models.statuses import ChunkStage

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


def queue_name(prefix: str, stage: ChunkStage, model: ModelRef) -> str:
    return f"{prefix}:{stage}:{model}"


def chunk_job_id(chunk_id: int, stage: ChunkStage) -> str:
    return f"chunk-{chunk_id}-{stage}"


def enqueue_chunks(
    connection: Redis, prefix: str, routes: Iterable[ChunkRoute], *, timeout_s: int
) -> int:
    """Enqueue one job per chunk on its stage's model queue, in a single Redis round trip."""
    by_queue: dict[str, list[ChunkRoute]] = {}
    for route in routes:
        by_queue.setdefault(queue_name(prefix, route.stage, route.model), []).append(route)
    if not by_queue:
        return 0
    with connection.pipeline() as pipe:
        for name, queued in by_queue.items():
            Queue(name, connection=connection).enqueue_many(
                [
                    Queue.prepare_data(
                        JOB_FUNCTIONS[route.stage],
                        args=(route.chunk_id,),
                        job_id=chunk_job_id(route.chunk_id, route.stage),
                        timeout=timeout_s,
                        result_ttl=3600,
                        failure_ttl=7 * 24 * 3600,
                    )
                    for route in queued
                ],
                pipeline=pipe,
            )
        pipe.execute()
    return sum(len(queued) for queued in by_queue.values())


def routes_in_queue(connection: Redis, routes: list[ChunkRoute]) -> set[ChunkRoute]:
    """Which of these (queued) chunks have a job waiting in Redis. A job that looks started
    while Postgres has its chunk queued belongs to a run that ended (its worker was killed, or
    it failed and gave the chunk back), so it does not count: sending such a chunk again at
    worst delivers it twice, and the second delivery finds it claimed and skips."""
    jobs = Job.fetch_many(
        [chunk_job_id(route.chunk_id, route.stage) for route in routes], connection=connection
    )
    return {
        route
        for route, job in zip(routes, jobs, strict=True)
        if job is not None and job.get_status(refresh=False) == "queued"
    }


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
        Worker.count(connection=connection, queue=Queue(name, connection=connection)) > 0
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
    Queue(training_queue_name(prefix), connection=connection).enqueue(
        TRAINING_JOB_FUNCTION,
        job_id,
        job_id=training_rq_job_id(job_id),
        job_timeout=-1,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
    )


def training_job_in_queue(connection: Redis, job_id: str) -> bool:
    """Whether this training job waits or runs in Redis."""
    job = Job.fetch_many([training_rq_job_id(job_id)], connection=connection)[0]
    return job is not None and job.get_status(refresh=False) in ("queued", "started")
