"""One process's connections for its whole life: settings, the database, Redis, its name.

The worker, the train worker, the reaper, the API and the command line each open one; RQ jobs
(which take ids, not objects) find the one their process set up with `process_context()`."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from types import TracebackType
from typing import TypeVar

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import Settings, get_settings
from app.kernel.db.retry import in_transaction
from app.kernel.db.session import make_engine, make_session_factory
from app.kernel.metrics_store import MetricsStore

T = TypeVar("T")


def process_name() -> str:
    """host:pid, the name a worker goes by in leases, heartbeats and logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class ProcessContext:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    name: str = field(default_factory=process_name)

    @classmethod
    def open(cls, settings: Settings, *, name: str | None = None) -> ProcessContext:
        """Connect to DATABASE_URL (ServicesNotConfiguredError when unset); Redis on first use."""
        engine = make_engine(
            settings.require_database_url(),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout_s=settings.db_pool_timeout_s,
        )
        return cls(settings, engine, make_session_factory(engine), name or process_name())

    @cached_property
    def redis(self) -> Redis:
        """REDIS_URL's client (ServicesNotConfiguredError when unset)."""
        return Redis.from_url(self.settings.require_redis_url())

    @property
    def metrics(self) -> MetricsStore:
        """Where this process's figures for /metrics go (Redis, under the queue prefix)."""
        return MetricsStore(self.redis, self.settings.queue_name)

    def transaction(self, work: Callable[[Session], T]) -> T:
        """Run work in one transaction, again while Postgres is unreachable (up to DB_RETRY_S)."""
        return in_transaction(self.session_factory, work, retry_s=self.settings.db_retry_s)

    def close(self) -> None:
        if "redis" in self.__dict__:
            self.redis.close()
        self.engine.dispose()

    def __enter__(self) -> ProcessContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_current: ProcessContext | None = None


def set_process_context(context: ProcessContext) -> ProcessContext:
    """Make this the context of the process's jobs (done once, by whoever starts the process)."""
    global _current
    _current = context
    return context


def process_context() -> ProcessContext:
    """The context the process set up; opened from the environment if nobody did."""
    return _current or set_process_context(ProcessContext.open(get_settings()))
