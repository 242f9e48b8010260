"""API request figures for /metrics: count by method, route template and status, and latency.

Each API process counts its requests in memory (no Redis round trip on a request's path) and a
thread adds them to the shared Redis figures every FLUSH_INTERVAL_S, as workers add theirs; so
any number of uvicorn workers, on any number of machines, show one total. A request is labelled
by the template of the route it matched (`/v1/batches/{batch_id}`), never by its path: no id
shows, and a path that matches no route counts as the route `unmatched`."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kernel import metrics_store as store
from app.kernel.metrics_store import Figures, MetricsStore

FLUSH_INTERVAL_S = 1.0
UNMATCHED = "unmatched"
"""The route of a request no route took (a 404 on an unknown path, whatever its path)."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods shown as they are; any other as `other`, so a request makes no label of its own."""


class RequestMeter:
    """This process's request figures not yet in Redis: plain counts on a request's path, made
    into Redis fields only when flushed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.seconds: defaultdict[tuple[str, str], list[float]] = defaultdict(list)

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        shown_method = method if method in METHODS else "other"
        with self.lock:
            self.requests[(shown_method, route, status)] += 1
            self.seconds[(shown_method, route)].append(seconds)

    def flush(self, metrics: MetricsStore) -> None:
        """Add what was counted since the last flush to Redis (lost if Redis is down)."""
        with self.lock:
            requests, self.requests = self.requests, Counter()
            seconds, self.seconds = self.seconds, defaultdict(list)
        figures = Figures()
        for (method, route, status), count in requests.items():
            figures.count(store.HTTP_REQUESTS, (method, route, str(status)), count)
        for labels, observed in seconds.items():
            for value in observed:
                figures.observe(store.HTTP_REQUEST_SECONDS, labels, value)
        metrics.add(figures)

    @contextmanager
    def flushing(self, metrics: MetricsStore) -> Iterator[None]:
        """Flush every FLUSH_INTERVAL_S in a thread while the block runs, and once at its end."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(FLUSH_INTERVAL_S):
                self.flush(metrics)

        thread = threading.Thread(target=loop, name="findap-request-metrics", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            self.flush(metrics)


def route_template(scope: Scope) -> str:
    """The path template of the route that took the request, or UNMATCHED."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    return UNMATCHED


class RequestMetricsMiddleware:
    """Times every HTTP request and counts it with its route template and status code."""

    def __init__(self, app: ASGIApp, meter: RequestMeter) -> None:
        self.app = app
        self.meter = meter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the answer started is a 500 to the caller

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            self.meter.record(
                scope["method"], route_template(scope), status, time.perf_counter() - started
            )
