"""Keeping a running chunk's lease: a background thread renews it while the stage works."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from app.kernel.db.retry import first_line
from workers import chunk_store
from workers.chunk_store import Lease

log = logging.getLogger(__name__)


class LeaseLostError(Exception):
    """This run can no longer count on its chunk's lease: it makes no further model call."""


class LeaseKeeper:
    """Renews a chunk's lease every third of its length until stopped, or until the chunk is no
    longer this lease's (the reaper re-queued it): then `lost` is set and renewing stops.

    A run asks `check()` before each model call: the lease may be gone without `lost` being set
    yet, when Postgres did not answer for a whole lease (a restart): the reaper may have given
    the chunk to another worker meanwhile, and a model call now would only duplicate its work.
    So a worker may retry the database (DB_RETRY_S) longer than a lease without harm."""

    def __init__(
        self, session_factory: sessionmaker[Session], lease: Lease, *, lease_s: float
    ) -> None:
        self.session_factory = session_factory
        self.lease = lease
        self.lease_s = lease_s
        self.lost = threading.Event()
        self.renewed_at = time.monotonic()
        """When the lease was last known held (claimed or renewed), on the monotonic clock."""
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{lease.chunk_id}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def holds(self) -> bool:
        """Whether the lease is surely still this run's: not lost, and renewed less than a
        lease ago (so it has not run out in Postgres)."""
        return not self.lost.is_set() and time.monotonic() - self.renewed_at < self.lease_s

    def check(self) -> None:
        """Raise LeaseLostError unless the lease still holds (asked before each model call). A
        lease not renewed for a whole lease (the renewing thread starved, or Postgres away) is
        renewed here once more: kept if that works, lost if Postgres does not answer or the
        chunk is no longer this lease's."""
        if self.holds() or (not self.lost.is_set() and self.renew() is True):
            return
        raise LeaseLostError(
            f"chunk {self.lease.chunk_id}: lease of attempt {self.lease.attempt} lost, or not "
            f"renewed for {self.lease_s:g} s"
        )

    def renew(self) -> bool | None:
        """Renew the lease now: True if renewed, False if the chunk is no longer this lease's
        (`lost` is set), None if Postgres did not answer."""
        asked_at = time.monotonic()
        try:
            with self.session_factory.begin() as session:
                still_held = chunk_store.renew_lease(session, self.lease, lease_s=self.lease_s)
        except Exception as error:
            # Postgres may be restarting: the next tick tries again; if the lease runs out
            # meanwhile the reaper re-queues the chunk and this run's last write is refused.
            log.warning("chunk %s: lease not renewed (%s)", self.lease.chunk_id, first_line(error))
            return None
        if not still_held:
            log.warning(
                "chunk %s: lease lost (re-queued after it expired); this run's results are "
                "stored but another run finishes the chunk",
                self.lease.chunk_id,
            )
            self.lost.set()
            return False
        self.renewed_at = asked_at
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            if self.renew() is False:
                return
