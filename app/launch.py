"""Starting findap's processes together: the backing services (configured or embedded), the API
in a thread, a train worker beside it. `findap up`, `findap demo` and the benchmarks share this."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.db.migrate import upgrade_database
from app.kernel.process import die_with_parent, settings_environment, stop_rq_worker


@contextmanager
def backing_services(settings: Settings, *, reclaim_running: bool) -> Iterator[Settings]:
    """Settings bound to real servers: the configured ones, or embedded ones started here."""
    services = None
    if not settings.database_url or not settings.redis_url:
        from app.embedded import start_embedded_services

        services = start_embedded_services(settings.data_dir)
        settings = settings.model_copy(
            update={
                "database_url": settings.database_url or services.database_url,
                "redis_url": settings.redis_url or services.redis_url,
            }
        )
    upgrade_database(settings.require_database_url())
    if reclaim_running and services is not None:
        release_cut_off_work(settings)
    try:
        yield settings
    finally:
        if services is not None:
            services.stop()


def release_cut_off_work(settings: Settings) -> None:
    """Embedded services have one worker and one train worker, this process's: chunks and
    training jobs marked running were cut off. (Against shared servers other workers may hold
    them; their leases and heartbeats decide.)"""
    from training.job_store import fail_running_training_jobs
    from workers.chunk_store import release_cut_off_chunks

    with ProcessContext.open(settings) as context:
        with context.session_factory.begin() as session:
            release_cut_off_chunks(session, max_attempts=settings.chunk_max_attempts)
        fail_running_training_jobs(context)


@contextmanager
def train_worker_process(settings: Settings) -> Iterator[None]:
    """A `findap train-worker` beside `findap up`: RQ workers need a main thread of their own."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "train-worker"],
        env={**os.environ, **settings_environment(settings)},
        preexec_fn=die_with_parent,  # a killed `findap up` leaves no train worker behind
    )
    try:
        yield
    finally:
        stop_rq_worker(worker)


class ApiDidNotStartError(RuntimeError):
    """The API thread ended before it served (its error is in the log)."""


@contextmanager
def api_in_thread(settings: Settings, host: str, port: int) -> Iterator[str]:
    """Serve the API from a background thread; yields its base URL."""
    from app.main import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="findap-api", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise ApiDidNotStartError(f"the API did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
