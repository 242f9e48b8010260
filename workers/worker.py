"""`findap worker`: an RQ worker that keeps models loaded across jobs (no fork per job)."""

from __future__ import annotations

import logging

from redis import Redis
from rq import SimpleWorker

from app.core.config import Settings
from app.services.queue import chunk_queue
from workers.context import init_context
from workers.reconcile import requeue_lost_chunks

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Process chunks until stopped (or, with burst, until the queue is empty)."""
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set for the worker")
    connection = Redis.from_url(settings.redis_url)
    queue = chunk_queue(connection, settings.queue_name)
    context = init_context(settings)
    requeue_lost_chunks(context.session_factory, queue, timeout_s=settings.chunk_timeout_s)
    # SimpleWorker runs jobs in this process: CUDA does not survive fork, and loaded weights
    # stay loaded from one chunk to the next.
    worker = SimpleWorker([queue], connection=connection, name=None)
    return worker.work(burst=burst, with_scheduler=False, logging_level="INFO")
