"""A connection for clients that wait on work: it keeps polling through a server restart
instead of giving up."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from app.client.connection import Connection
from app.client.errors import ServerError, UnreachableError
from app.client.output import err

OUTAGE_STATUSES = frozenset({502, 503, 504})
"""Answers of a server that is restarting or has lost its database or queue for a while."""
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0)
"""Waits between polls while the server is away; the last one repeats."""


class PatientConnection(Connection):
    """A connection whose GETs outlast the server being away: connection refused, a broken
    connection or a 502/503/504 is retried with backoff, saying so once per outage. Only the
    polls of a waiting client use it; every other request fails at once."""

    def __init__(self, connection: Connection, *, console: Console) -> None:
        # The same session (its URL, key and where the key came from, timeouts, pool).
        self.__dict__.update(connection.__dict__)
        self.console = console

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON answer, retried until the server answers."""
        lost = 0
        while True:
            try:
                return super().get(path, **params)
            except (UnreachableError, ServerError) as error:
                if isinstance(error, ServerError) and error.status_code not in OUTAGE_STATUSES:
                    raise
                if lost == 0:
                    self.console.print(
                        f"lost the findap server at {self.url} ({error.message}); "
                        "retrying until it is back (Ctrl-C stops waiting, not the work)",
                        soft_wrap=True,
                    )
                time.sleep(BACKOFF_S[min(lost, len(BACKOFF_S) - 1)])
                lost += 1


def patient(connection: Connection) -> PatientConnection:
    """The connection for a client that waits: it survives a server restart."""
    if isinstance(connection, PatientConnection):
        return connection
    return PatientConnection(connection, console=err)
