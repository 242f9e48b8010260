"""A real HTTP server on 127.0.0.1, in a thread, that receives webhooks: it records every
request and answers the status codes it is given, in turn (then 204)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    answers: list[int] = field(default_factory=list)
    """Status codes for the next requests, first first; 204 once they run out."""
    hold: threading.Event | None = None
    """When set to an Event, each request waits for it before answering."""
    requests: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout_s: float = 30) -> list[Received]:
        """The first `count` requests, once that many arrived (AssertionError on timeout)."""
        with self.arrived:
            done = self.arrived.wait_for(lambda: len(self.requests) >= count, timeout_s)
        assert done, f"{len(self.requests)} request(s) received, expected {count}"
        return self.requests[:count]


@contextmanager
def webhook_receiver(path: str = "/hooks") -> Iterator[Receiver]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with receiver.arrived:
                receiver.requests.append(Received(dict(self.headers.items()), body))
                status = receiver.answers.pop(0) if receiver.answers else 204
                receiver.arrived.notify_all()
            if receiver.hold is not None:
                receiver.hold.wait(timeout=60)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}{path}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()


def verify(secret: str, received: Received, *, tolerance_s: int = 300) -> None:
    """Standard Webhooks verification, written from the spec (not findap's code): HMAC-SHA256
    keyed with the base64-decoded secret over `id.timestamp.body`, one of the space-separated
    `v1,<base64>` signatures equal in constant time, the timestamp within tolerance."""
    headers = {name.lower(): value for name, value in received.headers.items()}
    message_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) <= tolerance_s, timestamp
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = message_id.encode() + b"." + timestamp.encode() + b"." + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    candidates = [
        part.split(",", 1)[1]
        for part in headers["webhook-signature"].split(" ")
        if part.startswith("v1,")
    ]
    assert any(hmac.compare_digest(expected, candidate) for candidate in candidates), headers
