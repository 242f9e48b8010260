"""copy_lines: a binary COPY of one text column read as lines of the stored bytes; an error,
at the start or in the middle, is SQLAlchemy's and leaves no broken connection in the pool."""

from __future__ import annotations

import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.exc import DataError, ProgrammingError

from app.kernel.db.copy_out import copy_lines

TRICKY = ["plain", 'quote " and \\ back', "tab\tnew\nline\r", "\u2028 é 🙂", "", "\x01\x02"]


def test_rows_come_as_their_bytes_each_with_a_newline(
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    values = sql.SQL(", ").join(sql.Literal(value) for value in TRICKY)
    statement = sql.SQL(
        "COPY (SELECT v FROM unnest(ARRAY[{}]::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n)"
        " TO STDOUT (FORMAT binary)"
    ).format(values)
    with session_factory() as session:
        lines = copy_lines(session, statement)
    assert bytes(lines) == b"".join(value.encode() + b"\n" for value in TRICKY)


def test_no_rows_is_no_bytes(session_factory) -> None:  # type: ignore[no-untyped-def]
    statement = sql.SQL("COPY (SELECT 'x' WHERE false) TO STDOUT (FORMAT binary)")
    with session_factory() as session:
        assert copy_lines(session, statement) == b""


def test_many_rows_arrive_whole_and_in_order(session_factory) -> None:  # type: ignore[no-untyped-def]
    statement = sql.SQL(
        "COPY (SELECT repeat('é', i % 3000) || i FROM generate_series(1, 5000) AS i ORDER BY i)"
        " TO STDOUT (FORMAT binary)"
    )
    with session_factory() as session:
        lines = copy_lines(session, statement)
    expected = b"".join(("é" * (i % 3000) + str(i)).encode() + b"\n" for i in range(1, 5001))
    assert lines == expected


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("COPY (SELECT v FROM no_such_table) TO STDOUT (FORMAT binary)", ProgrammingError),
        # Fails after 2,000 rows were sent: no partial page comes back.
        (
            "COPY (SELECT (1 / (2000 - i))::text FROM generate_series(1, 3000) AS i ORDER BY i)"
            " TO STDOUT (FORMAT binary)",
            DataError,
        ),
    ],
)
def test_an_error_is_sqlalchemys_and_the_pool_stays_usable(
    session_factory,  # type: ignore[no-untyped-def]
    statement: str,
    error: type[Exception],
) -> None:
    for _ in range(3):  # more than once: the connection it used is not handed out broken
        with session_factory() as session, pytest.raises(error):
            copy_lines(session, sql.SQL(statement))  # type: ignore[arg-type]
    with session_factory() as session:
        assert session.execute(text("SELECT 'é', current_setting('client_encoding')")).one() == (
            "é",
            "UTF8",
        )
