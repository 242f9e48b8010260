"""Lines that Postgres writes, read a page at a time by key, several pages at once.

Where the next pages end is read first (an index scan of keys only), then those pages are read
at once, each a binary COPY of its lines (app.kernel.db.copy_out) on a connection of its own
and in its own short transaction: Postgres writes lines on several cores, a download holds no
connection between pages or while its client is slow to read, and its memory is a few pages
whatever the number of rows."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from psycopg import sql
from sqlalchemy import TextClause
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.db.copy_out import copy_lines

PAGE_READERS = 3
"""Pages a download reads at once, each on a connection of its own."""

Page = bytes | bytearray
"""A page of a download (a bytearray as read off its COPY: not copied once more)."""


def keyed_line_pages(
    session_factory: sessionmaker[Session],
    *,
    bounds_statement: TextClause,
    bounds_parameters: Mapping[str, Any],
    page_statement: Callable[[int, int], sql.Composable],
    page_rows: int,
    readers: int = PAGE_READERS,
) -> Iterator[Page]:
    """The lines (UTF-8) in key order, a page at a time, each page ending in a newline.

    `bounds_statement`, given `bounds_parameters` and :after, :rows and :page_rows, answers
    (position, key) of every :page_rows-th of the next :rows keys after :after, and of the last;
    `page_statement(after, rows)` is the COPY of the first `rows` lines with a key past `after`.
    Pages are handed over in order, and at most `readers` pages are read ahead of the caller,
    none while the caller holds them all."""

    def read_page(after: int, rows: int) -> Page:
        with session_factory() as session:
            return copy_lines(session, page_statement(after, rows))

    def next_pages(after: int) -> tuple[list[tuple[int, int]], int]:
        """The next pages (at most `readers`), each as the key it starts after and its number
        of rows; and the last key in them."""
        with session_factory() as session:
            bounds = session.execute(
                bounds_statement,
                {
                    **bounds_parameters,
                    "after": after,
                    "rows": readers * page_rows,
                    "page_rows": page_rows,
                },
            ).all()
        pages: list[tuple[int, int]] = []
        start, read = after, 0
        for position, last_key in bounds:
            pages.append((start, position - read))
            start, read = last_key, position
        return pages, start

    pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="page-reader")
    reading: deque[Future[Page]] = deque()
    try:
        after, more = 0, True
        pages: deque[tuple[int, int]] = deque()
        while True:
            if more and len(reading) < readers and not pages:
                next_ones, after = next_pages(after)
                pages.extend(next_ones)
                more = bool(next_ones)
            while len(reading) < readers and pages:
                reading.append(pool.submit(read_page, *pages.popleft()))
            if not reading:
                return
            yield reading.popleft().result()
    finally:
        for page in reading:
            page.cancel()
        pool.shutdown(wait=True)


def bounds_sql(key: str, scope: str) -> str:
    """The bounds statement of the rows `SELECT {key} FROM {scope}` keeps (scope: FROM … WHERE
    …, without the key's own condition), in key order."""
    return f"""SELECT position, key FROM (
        SELECT next.key, row_number() OVER (ORDER BY next.key) AS position,
            count(*) OVER () AS total
        FROM (
            SELECT {key} AS key FROM {scope} AND {key} > :after
            ORDER BY {key} LIMIT :rows
        ) AS next
    ) AS numbered
    WHERE position % :page_rows = 0 OR position = total
    ORDER BY position"""
