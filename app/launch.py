"""Starting findap's processes together: the backing services (configured or embedded), the API
in a thread, a train worker and a webhook sender beside it. `findap up`, `findap demo` and the
benchmarks share this."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from filelock import FileLock, Timeout
from uvicorn.config import LOGGING_CONFIG

from app.kernel.batch_options import EngineName
from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.db.migrate import upgrade_database
from app.kernel.models.statuses import ChunkStage
from app.kernel.process import die_with_parent, settings_environment, stop_rq_worker
from app.kernel.queue import ModelRef, has_live_worker

LOCK_FILE = "findap.lock"
"""In DATA_DIR: locked by the one `findap up` (or `demo`, or benchmark) that uses the folder."""


class DataFolderInUseError(RuntimeError):
    """Another process holds the data folder's lock."""


@contextmanager
def data_folder_lock(data_dir: Path) -> Iterator[None]:
    """Hold DATA_DIR's lock for the block: one process at a time starts and stops the embedded
    services, reclaims cut-off work and writes models there. The operating system releases it
    when the process ends, however it ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(data_dir / LOCK_FILE, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise DataFolderInUseError(
            f"the data folder {data_dir.resolve()} is in use by another `findap up` or "
            "`findap demo`: stop that one first, or give this one another folder (DATA_DIR=…); "
            "to add a worker to the running one, use `findap worker`"
        ) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def backing_services(settings: Settings, *, reclaim_running: bool) -> Iterator[Settings]:
    """Settings bound to real servers: the configured ones, or embedded ones started here.

    The data folder is locked first (DataFolderInUseError when another process holds it)."""
    with (
        data_folder_lock(settings.data_dir),
        bound_services(settings, reclaim_running=reclaim_running) as bound,
    ):
        yield bound


@contextmanager
def bound_services(settings: Settings, *, reclaim_running: bool) -> Iterator[Settings]:
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
    if services is not None:
        record_services(settings)
    try:
        yield settings
    finally:
        if services is not None:
            forget_services(settings)
            services.stop()


SERVICES_FILE = "services.json"
"""In DATA_DIR while a `findap up` runs there: its embedded services' URLs, for the processes
started beside it (`findap worker`) to join."""


def record_services(settings: Settings) -> None:
    """Write where this process's embedded Postgres and Redis listen (owner-only: the URLs
    are all a process needs to reach them)."""
    path = settings.data_dir / SERVICES_FILE
    record = {
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "pid": os.getpid(),
    }
    path.write_text(json.dumps(record))
    path.chmod(0o600)


def forget_services(settings: Settings) -> None:
    path = settings.data_dir / SERVICES_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass  # gone or unreadable: nothing recorded to forget


def attached_settings(settings: Settings) -> Settings:
    """Settings with the URLs of the `findap up` running on DATA_DIR filled in where
    DATABASE_URL or REDIS_URL is unset; unchanged when both are set or none runs there."""
    if settings.database_url and settings.redis_url:
        return settings
    try:
        record = json.loads((settings.data_dir / SERVICES_FILE).read_text())
        os.kill(int(record["pid"]), 0)  # still running? (signal 0 only checks)
    except (OSError, ValueError, KeyError, TypeError):
        return settings
    return settings.model_copy(
        update={
            "database_url": settings.database_url or record["database_url"],
            "redis_url": settings.redis_url or record["redis_url"],
        }
    )


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


@contextmanager
def webhook_sender_process(settings: Settings) -> Iterator[None]:
    """A `findap webhooks` beside `findap up`: it sends the outbox of webhook deliveries."""
    sender = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "webhooks"],
        env={**os.environ, **settings_environment(settings)},
        preexec_fn=die_with_parent,
    )
    try:
        yield
    finally:
        sender.terminate()
        try:
            sender.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sender.kill()


@contextmanager
def worker_process(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A `findap worker --burst` beside `findap demo`, its output appended to log_path: the
    demo's terminal shows the client's progress, not the worker's log."""
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--burst"],
            env={**os.environ, **settings_environment(settings)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    try:
        yield worker
    finally:
        stop_rq_worker(worker)


def wait_until_listening(settings: Settings, worker: subprocess.Popen[bytes]) -> None:
    """Until the worker listens on its queues (it judges by rule, as every worker does), or has
    stopped: so the first poll does not say that no worker serves the work."""
    rule = ModelRef(EngineName.RULE, EngineName.RULE.value)
    with ProcessContext.open(settings) as context:
        while worker.poll() is None and not has_live_worker(
            context.redis, settings.queue_name, ChunkStage.JUDGE, rule
        ):
            time.sleep(0.2)


class ApiDidNotStartError(RuntimeError):
    """The API thread ended before it served (its error is in the log)."""


@contextmanager
def api_in_thread(
    settings: Settings, host: str, port: int, *, log_to_root: bool = False
) -> Iterator[str]:
    """Serve the API from a background thread; yields its base URL. With `log_to_root`,
    uvicorn's own warnings go where this process's log goes, not to stderr."""
    from app.main import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            log_level="warning",
            log_config=None if log_to_root else LOGGING_CONFIG,
        )
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
