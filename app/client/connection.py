"""The HTTP side of the client: one httpx client per command, answers checked at the boundary.

Every httpx error and every 4xx/5xx answer leaves this module as a ClientError whose message is
one line; nothing above it sees httpx's exceptions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from app.client.config import ClientConfig
from app.client.errors import ClientError, ServerError, UnreachableError

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
RETRY_DELAYS_S = (1.0, 3.0)
"""Waits before the retries of a POST that carries an Idempotency-Key."""
RETRYABLE_ERRORS = (
    httpx.ReadError,
    httpx.WriteError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
)
"""The request may have reached the server: only an idempotent retry is safe."""


def one_line(text: str, limit: int = 500) -> str:
    """Whitespace (newlines included) collapsed, long text cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_detail(response: httpx.Response) -> str:
    """The `detail` of an error answer, or what there is of its body."""
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return one_line(response.text) or response.reason_phrase
    return one_line(detail if isinstance(detail, str) else str(detail))


def check(response: httpx.Response, key_source: str | None = None) -> httpx.Response:
    """The response, or a ServerError for a 4xx/5xx answer (the body is read for it); a refused
    key names where the key came from."""
    if response.status_code >= 400:
        response.read()
        detail = error_detail(response)
        if response.status_code in (401, 403) and key_source:
            detail += f" (the key came from {key_source})"
        raise ServerError(response.status_code, detail)
    return response


class Connection:
    """An authenticated session with one findap server."""

    def __init__(self, *, url: str, key: str, key_source: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ClientError(f"url: must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.key_source = key_source
        """Where the key came from (--key, FINDAP_KEY, the config file), named on a 401."""
        self._http = httpx.Client(
            base_url=self.url, timeout=TIMEOUT, headers={"Authorization": f"Bearer {key}"}
        )

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """httpx's transport errors as one-line UnreachableErrors naming the server."""
        try:
            yield
        except httpx.ConnectError as error:
            raise UnreachableError(
                f"cannot reach the findap server at {self.url} ({error}): is it up? "
                "Point to it with --url, FINDAP_URL or `findap login`"
            ) from None
        except httpx.TimeoutException:
            raise UnreachableError(
                f"the findap server at {self.url} did not answer within {TIMEOUT.read:.0f} s"
            ) from None
        except httpx.TransportError as error:
            reason = one_line(str(error)) or type(error).__name__
            raise UnreachableError(f"the connection to {self.url} failed: {reason}") from None

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON answer; None-valued params are left out."""
        with self._translated():
            response = self._http.get(path, params=_present(params))
        return check(response, self.key_source).json()

    def get_all(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paged list: its pages' `data`, following `last_id` while `has_more`."""
        items: list[Any] = []
        after = None
        while True:
            page = self.get(path, **params, after=after)
            items.extend(page["data"])
            if not page.get("has_more") or page.get("last_id") is None:
                return items
            after = page["last_id"]

    def post(self, path: str, **request: Any) -> Any:
        """POST once (`json=` or `files=` and `data=`), for routes without idempotency keys."""
        with self._translated():
            response = self._http.post(path, **request)
        return check(response, self.key_source).json()

    def post_idempotent(
        self, path: str, idempotency_key: str, request: Callable[[], dict[str, Any]]
    ) -> httpx.Response:
        """POST with an Idempotency-Key, retried with the same key when the answer was lost or
        the server was briefly unavailable, so the work is made once. `request` gives httpx's
        keyword arguments afresh for each try (an upload reopens its file)."""
        headers = {"Idempotency-Key": idempotency_key}
        for delay in (*RETRY_DELAYS_S, None):
            with self._translated():
                try:
                    response = self._http.post(path, headers=headers, **request())
                except RETRYABLE_ERRORS:
                    if delay is None:
                        raise
                    time.sleep(delay)
                    continue
            if response.status_code != 503 or delay is None:
                return check(response, self.key_source)
            time.sleep(delay)
        raise AssertionError("unreachable: the last try returns or raises")

    @contextmanager
    def stream(self, path: str, **params: Any) -> Iterator[httpx.Response]:
        """A streamed GET, checked before its body is read; a connection that breaks while the
        body streams is an UnreachableError too."""
        with self._translated(), self._http.stream("GET", path, params=_present(params)) as answer:
            yield check(answer, self.key_source)


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}


def connect(config: ClientConfig) -> Connection:
    """A connection with the configured URL and key (a ClientError if no key is set)."""
    return Connection(url=config.url, key=config.key(), key_source=config.key_source())
