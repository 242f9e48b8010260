"""A live server for tests that talk HTTP: the real app under uvicorn on a free port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.kernel.config import Settings
from app.launch import api_in_thread


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class LiveApi:
    url: str
    key: str
    """A key of the project the test acts as."""


@contextmanager
def live_api(settings: Settings, key: str) -> Iterator[LiveApi]:
    """The API bound to these settings, served from a thread until the block ends."""
    with api_in_thread(settings, "127.0.0.1", free_port()) as url:
        yield LiveApi(url=url, key=key)
