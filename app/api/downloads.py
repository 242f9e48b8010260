"""Streamed downloads: pages read off the event loop, sent in small pieces, a slot held per
download, and a Content-Disposition any file name fits in."""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncGenerator, Iterator
from urllib.parse import quote

from anyio import CancelScope
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Send

from app.kernel.pairs_export import Page
from app.services.downloads import DownloadSlot

JSONL_MEDIA_TYPE = "application/jsonl"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
PIECE_BYTES = 64 * 1024
"""What one network write carries: a slow reader paces the stream a piece at a time, and the
download's slot is renewed between pieces."""


def attachment(filename: str) -> str:
    """Content-Disposition for a download named filename: an ASCII `filename` for old clients
    and, for any other name, RFC 6266's `filename*` with the name in UTF-8."""
    fallback = ascii_filename(filename)
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def ascii_filename(filename: str) -> str:
    """The name in printable ASCII: accents dropped (Ü -> U), other characters and quotes `_`."""
    letters = unicodedata.normalize("NFKD", filename)
    plain = "".join(char for char in letters if not unicodedata.combining(char))
    return "".join(char if " " <= char <= "~" and char not in '"\\' else "_" for char in plain)


def _next_page(pages: Iterator[Page]) -> Page | None:
    return next(pages, None)


def read_ahead(pages: Iterator[Page]) -> asyncio.Future[Page | None]:
    """The next page, read in the thread pool (its query must not block the event loop)."""
    return asyncio.ensure_future(run_in_threadpool(_next_page, pages))


async def pieces(
    first_page: Page | None, pages: Iterator[Page], slot: DownloadSlot
) -> AsyncGenerator[memoryview, None]:
    """The pages in pieces of PIECE_BYTES, the next page read while this one is sent (Postgres
    and this process work at once); the slot is renewed as the stream goes and released at its
    end, also when the client goes away."""
    page = first_page
    next_page = read_ahead(pages)
    try:
        while page is not None:
            view = memoryview(page)  # pieces cut without copying
            for start in range(0, len(view), PIECE_BYTES):
                yield view[start : start + PIECE_BYTES]
                if slot.renewal_due():
                    await run_in_threadpool(slot.renew)
            page = await next_page
            if page is not None:
                next_page = read_ahead(pages)
    finally:
        with CancelScope(shield=True):
            # Until the read ahead is over (it may have been cancelled with this stream: wait()
            # raises neither its cancellation nor its error), then nothing reads the pages.
            await asyncio.wait([next_page])
            await run_in_threadpool(slot.release)
            await run_in_threadpool(close_pages, pages)


def close_pages(pages: Iterator[Page]) -> None:
    close = getattr(pages, "close", None)
    if close is not None:
        close()


class DownloadResponse(StreamingResponse):
    """A StreamingResponse that closes its body when the stream ends in any way: a client that
    hangs up frees the download's slot at once, not when the garbage collector gets to it."""

    body_iterator: AsyncGenerator[memoryview, None]

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with CancelScope(shield=True):
                await self.body_iterator.aclose()


def download_response(
    pages: Iterator[Page],
    slot: DownloadSlot,
    *,
    media_type: str,
    filename: str,
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """The download's response, its first page already read (call it off the event loop): a
    database that fails at the start is answered with a 503, not with a 200 cut short."""
    try:
        first_page = next(pages, None)
    except BaseException:
        slot.release()
        close_pages(pages)
        raise
    return DownloadResponse(
        pieces(first_page, pages, slot),
        media_type=media_type,
        headers={"Content-Disposition": attachment(filename), **(headers or {})},
    )
