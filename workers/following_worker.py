"""A worker that also serves models it was not started with: every model queued for one of its
local engines (a project's newly trained model, a folder a batch names), found as its queue
appears, loaded on first use (workers/engines/registry.py unloads the least recently used)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rq import Queue, SimpleWorker, worker_registration

from app.kernel.models.statuses import ChunkStage
from app.kernel.queue import JOB_SERIALIZER, follower_key, job_queue

log = logging.getLogger(__name__)

REFRESH_S = 2
"""How often an idle worker looks for new model queues: its dequeue timeout, after which RQ
beats the heart again."""


def followed_queue_names(
    names: Iterable[str], prefix: str, engines: Iterable[str], stage: ChunkStage
) -> list[str]:
    """Of these queue names, those of this stage for any model of these engines, sorted."""
    starts = tuple(f"{prefix}:{stage}:{engine}:" for engine in engines)
    return sorted(name for name in names if name.startswith(starts))


class FollowingWorker(SimpleWorker):
    """A SimpleWorker that adds the queues of new models of its engines as they appear.

    It looks on each heartbeat (after each job, and every REFRESH_S while idle) and registers on
    what it adds, so the API's "a live worker serves this model" check sees it; while it runs a
    job, a key per engine (app.kernel.queue.follower_key) tells the API that new models of that
    engine are served too.
    """

    def __init__(
        self, queues: list[Queue], *, prefix: str, engines: Iterable[str], **kwargs: Any
    ) -> None:
        self.prefix = prefix
        self.engines = tuple(sorted(set(engines)))
        super().__init__(queues, **{"serializer": JOB_SERIALIZER, **kwargs})

    @property
    def dequeue_timeout(self) -> int:
        # RQ's default (worker_ttl - 15 s) would see a new model's queue minutes late.
        return REFRESH_S

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's heartbeat, plus: mark the engines followed, and take new model queues."""
        super().heartbeat(timeout, pipeline)
        expire = timeout or self.worker_ttl + 60
        connection = pipeline if pipeline is not None else self.connection
        for engine in self.engines:
            connection.set(follower_key(self.prefix, engine), self.name, ex=expire)
        if pipeline is None:  # RQ's own beats in a pipeline are part of starting a job
            self.take_new_queues()

    def take_new_queues(self) -> None:
        """Add queues of followed engines that appeared since; judge queues stay first."""
        known = set(self.queue_names())
        names = [queue.name for queue in Queue.all(connection=self.connection)]
        judge = followed_queue_names(names, self.prefix, self.engines, ChunkStage.JUDGE)
        sample = followed_queue_names(names, self.prefix, self.engines, ChunkStage.SAMPLE)
        new_judge = [name for name in judge if name not in known]
        new_sample = [name for name in sample if name not in known]
        if not new_judge and not new_sample:
            return
        judges = [q for q in self.queues if f":{ChunkStage.JUDGE}:" in q.name]
        others = [q for q in self.queues if f":{ChunkStage.JUDGE}:" not in q.name]
        make = [job_queue(name, self.connection) for name in new_judge + new_sample]
        self.queues = judges + make[: len(new_judge)] + others + make[len(new_judge) :]
        self._ordered_queues = self.queues[:]
        worker_registration.register(self)
        self.connection.hset(self.key, "queues", ",".join(self.queue_names()))
        log.info("now also serving %s", ", ".join(new_judge + new_sample))

    def register_death(self) -> None:
        """RQ's, plus: the engines are no longer followed by this worker."""
        for engine in self.engines:
            key = follower_key(self.prefix, engine)
            if self.connection.get(key) in (self.name, self.name.encode()):
                self.connection.delete(key)
        super().register_death()
