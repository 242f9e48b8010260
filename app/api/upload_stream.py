"""A multipart/form-data upload read as it streams in.

Starlette's `request.form()` receives the whole body before a route sees a byte of it. Here the
bytes of one file part go, piece by piece as they arrive, to a consumer that runs in a worker
thread: the event loop only moves bytes, and a consumer that refuses the data (a bad line, one
line too many) ends the request at once, before the rest of the body is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException


@dataclass
class _Part:
    name: str | None = None
    is_file: bool = False
    header_name: bytes = b""
    header_value: bytes = b""
    disposition: bytes = b""
    content_type: bytes = b""
    data: bytearray = field(default_factory=bytearray)


class StreamedForm:
    """The text fields of a multipart body, with the bytes of its file part `file_field` handed
    to `consume_file` (called in a worker thread, in order) instead of being kept."""

    def __init__(
        self,
        content_type: str,
        consume_file: Callable[[bytes], None],
        *,
        file_field: str = "file",
        max_field_bytes: int = 1024 * 1024,
    ) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise HTTPException(400, "content-type: multipart/form-data without a boundary")
        self.consume_file = consume_file
        self.file_field = file_field
        self.max_field_bytes = max_field_bytes
        self.fields: dict[str, str] = {}
        self.fields_before_file: dict[str, str] = {}
        """The text fields that came before the file part: those that may say how to read it."""
        self.file_seen = False
        self.filename: str | None = None
        self.file_content_type: str | None = None
        """The file part's Content-Type header, if it has one."""
        self._part = _Part()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    async def read(self, stream: AsyncIterator[bytes]) -> None:
        """Read the body to its end; whatever `consume_file` raises ends the reading."""
        try:
            async for chunk in stream:
                self._parser.write(chunk)
                # Each piece as it comes (up to 64 KiB from uvicorn): a refusal never waits for
                # bytes a client may not send until it has an answer.
                await self._hand_off()
            self._parser.finalize()
        except FormParserError as error:
            raise HTTPException(
                400, f"request body: not valid multipart/form-data ({error})"
            ) from None
        await self._hand_off()

    async def _hand_off(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending, self._pending_bytes = [], 0
            await run_in_threadpool(self.consume_file, data)

    def _part_begin(self) -> None:
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]

    def _header_end(self) -> None:
        if self._part.header_name.lower() == b"content-disposition":
            self._part.disposition = self._part.header_value
        elif self._part.header_name.lower() == b"content-type":
            self._part.content_type = self._part.header_value
        self._part.header_name = self._part.header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._part.disposition)
        if b"name" not in options:
            raise HTTPException(400, "request body: a part without a Content-Disposition name")
        self._part.name = options[b"name"].decode("utf-8", errors="replace")
        if self._part.name == self.file_field:
            if self.file_seen:
                raise HTTPException(400, f"{self.file_field}: send one file, not several")
            self.file_seen = self._part.is_file = True
            self.fields_before_file = dict(self.fields)
            self.filename = options.get(b"filename", b"").decode("utf-8", errors="replace")
            self.file_content_type = self._part.content_type.decode("latin-1") or None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part.is_file:
            self._pending.append(data[start:end])
            self._pending_bytes += end - start
            return
        self._part.data += data[start:end]
        if len(self._part.data) > self.max_field_bytes:
            raise HTTPException(
                413, f"{self._part.name}: larger than the limit of {self.max_field_bytes} bytes"
            )

    def _part_end(self) -> None:
        if not self._part.is_file and self._part.name is not None:
            self.fields[self._part.name] = self._part.data.decode("utf-8", errors="replace")
