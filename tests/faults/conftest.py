"""Fault tests: real worker processes that are killed, a Redis that is flushed, a Postgres that
is restarted. Short leases and reaper intervals keep each test within seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.kernel.config import Settings
from tests.faults.support import WorkerProcess


@pytest.fixture
def fault_settings(settings: Settings) -> Settings:
    """Leases of 2 s renewed every 0.7 s, a reaper pass every 0.5 s, 3 attempts per chunk."""
    return settings.model_copy(
        update={
            "chunk_lease_s": 2,
            "reaper_interval_s": 0.5,
            "chunk_max_attempts": 3,
            "db_retry_s": 30,
        }
    )


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes; each is stopped when the test ends."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, **faults: object) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", **faults)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
