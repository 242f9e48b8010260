"""Reading a one-column `COPY (SELECT …) TO STDOUT (FORMAT binary)` as lines of bytes.

Each row is one line, taken as the bytes Postgres sent: no Python object per column, no str,
no escaping (binary COPY sends a text value as it is; text or CSV COPY would scan and escape
it). The rows are read straight off libpq, a few C calls per row, and the thread waits for
data in select() (the GIL released), as psycopg's own COPY does."""

from __future__ import annotations

import select

import psycopg
from psycopg import pq, sql
from psycopg.errors import error_from_result
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

BINARY_HEADER_BYTES = 19
"""Signature (11), flags (4) and header extension length (4) before the first row."""
ROW_PREFIX_BYTES = 6
"""A row: its number of fields (int16, here 1) and the field's length (int32), then the field."""


def copy_lines(session: Session, statement: sql.Composable) -> bytearray:
    """The rows of a binary COPY TO STDOUT of one text column, each followed by a newline, run
    on the session's connection in its transaction, the text's bytes as they are stored (the
    transaction's client_encoding is SQL_ASCII: no conversion, no check; SET LOCAL, so the
    connection is back to UTF-8 when it ends). A database error is raised as SQLAlchemy's (the
    API answers it as any other); a connection left mid-COPY is discarded."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    rendered = statement.as_bytes(driver)  # while the connection still speaks UTF-8
    session.execute(text("SET LOCAL client_encoding = 'SQL_ASCII'"))
    try:
        return read_copy(driver.pgconn, rendered)
    except BaseException as error:
        connection.invalidate()  # the protocol may be anywhere: this connection is not reused
        if isinstance(error, psycopg.Error):
            raise DBAPIError.instance(
                rendered.decode(errors="replace"), None, error, psycopg.Error
            ) from error
        raise


def read_copy(pgconn: pq.abc.PGconn, statement: bytes) -> bytearray:
    """Send the COPY, then gather its rows' field bytes, a newline after each."""
    pgconn.send_query(statement)
    while pgconn.flush():
        select.select([], [pgconn.socket], [])
    started = next_result(pgconn)
    if started is None or started.status != pq.ExecStatus.COPY_OUT:
        raise failed(pgconn, started)
    lines = bytearray()
    skip = BINARY_HEADER_BYTES + ROW_PREFIX_BYTES
    get_copy_data = pgconn.get_copy_data
    while True:
        size, data = get_copy_data(1)
        if size > 0:
            if size >= skip:  # a row (the trailer, -1 as an int16, is shorter)
                lines += data[skip:]
                lines += b"\n"
            skip = ROW_PREFIX_BYTES
        elif size == 0:  # nothing buffered: wait for the next bytes
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        else:
            break
    finished = next_result(pgconn)
    if finished is None or finished.status != pq.ExecStatus.COMMAND_OK:
        raise failed(pgconn, finished)
    while next_result(pgconn) is not None:
        pass
    return lines


def next_result(pgconn: pq.abc.PGconn) -> pq.abc.PGresult | None:
    """The statement's next result (None after the last), waited for without blocking other
    threads."""
    pgconn.consume_input()
    while pgconn.is_busy():
        select.select([pgconn.socket], [], [])
        pgconn.consume_input()
    return pgconn.get_result()


def failed(pgconn: pq.abc.PGconn, result: pq.abc.PGresult | None) -> psycopg.Error:
    """The error a result carries, after the statement's remaining results are read."""
    while next_result(pgconn) is not None:
        pass
    if result is None:
        return psycopg.OperationalError("COPY: the server sent no result")
    return error_from_result(result, encoding="utf-8")
