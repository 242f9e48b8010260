"""Database engine and session factory; the outermost caller owns each transaction."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

SessionFactory = sessionmaker[Session]
"""What makes a process's sessions; the outermost caller opens and commits each."""


def make_engine(
    database_url: str, *, pool_size: int = 5, max_overflow: int = 10, pool_timeout_s: float = 30
) -> Engine:
    """A pooled engine that checks connections before use (Postgres may have restarted)."""
    return create_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        # An unreachable server fails a request in seconds (a 503), not after the OS timeout.
        connect_args={"connect_timeout": 10},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for requests that only read: each statement commits by itself, so a poll makes
    no BEGIN and no ROLLBACK round trip, and closing one does no I/O."""
    return sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
