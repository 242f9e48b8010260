"""A worker's transactions outlive a Postgres restart: each is run again, from its start, while
the connection fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_connection_error(error: BaseException) -> bool:
    """Postgres unreachable, restarting, or it dropped the connection (also deadlocks and
    serialization failures, which psycopg reports the same way): running it again can work."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError)


def in_transaction(
    session_factory: sessionmaker[Session], work: Callable[[Session], T], *, retry_s: float
) -> T:
    """Run work in one transaction; on a connection error run it again, backing off, for up to
    retry_s seconds (work must be safe to repeat: the idempotent writes of a chunk are)."""
    retrying = Retrying(
        retry=retry_if_exception(is_connection_error),
        stop=stop_after_delay(retry_s),
        wait=wait_exponential(multiplier=0.2, max=5),
        before_sleep=_log_retry,
        reraise=True,
    )

    def run() -> T:
        with session_factory.begin() as session:
            return work(session)

    return retrying(run)


def first_line(error: BaseException) -> str:
    """The gist of an error for a one-line log (driver messages run over several lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "database unavailable (%s); retrying in %.1f s",
        first_line(error) if error else "?",
        state.next_action.sleep if state.next_action else 0,
    )
