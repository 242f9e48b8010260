"""A JSONL upload is parsed off the event loop as it streams in: the API keeps answering while a
large one is parsed, and one prompt past the limit ends the request before the rest is sent."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from redis import Redis

from app.kernel.config import Settings
from app.kernel.process import settings_environment
from app.services.uploads import PromptLines
from tests.conftest import api_key, bearer
from tests.live import free_port, live_api

REPO = Path(__file__).resolve().parents[2]

BOUNDARY = "findap-test-boundary"


def prompt_line(number: int) -> bytes:
    question = f"Question {number}: what is {number} + {number}? " + "Think it through. " * 12
    return json.dumps({"question": question, "reference_answer": str(2 * number)}).encode() + b"\n"


@contextmanager
def api_process(settings: Settings, log_path: Path) -> Iterator[str]:
    """`findap serve` in a process of its own, as deployed: the test's clients share no
    interpreter (nor its garbage collector) with it. Yields its base URL."""
    port = free_port()
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env={**os.environ, **settings_environment(settings)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_healthz_answers_quickly_while_a_large_upload_is_parsed(
    settings: Settings, redis: Redis, session_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # 200,000 prompts (~60 MB) whose last line is bad: every line is parsed, nothing is stored.
    lines = [prompt_line(number) for number in range(200_000)]
    body = b"".join(lines) + b'{"question": "unfinished"\n'
    assert len(body) > 50 * 1024 * 1024
    roomy = settings.model_copy(update={"max_prompts_per_batch": 300_000})
    key = api_key(session_factory)
    with api_process(roomy, tmp_path / "api.log") as url:
        answer: dict[str, httpx.Response] = {}

        def submit() -> None:
            with httpx.Client(base_url=url, headers=bearer(key), timeout=300) as client:
                answer["upload"] = client.post(
                    "/v1/batches", files={"file": ("big.jsonl", body, "application/jsonl")}
                )

        uploader = threading.Thread(target=submit)
        latencies: list[float] = []
        with httpx.Client(base_url=url, timeout=30) as poller:
            poller.get("/healthz")  # connected, warm
            uploader.start()
            while uploader.is_alive():
                started = time.monotonic()
                assert poller.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)
        uploader.join()

    upload = answer["upload"]
    assert upload.status_code == 422
    assert upload.json()["detail"].startswith("file line 200001: not valid JSON")
    # Parsed on the event loop, the file held every request for its whole parse (2.3 s or more
    # here); off it, an answer waits only for its turn at the GIL and for the API's garbage
    # collections, which grow with the 200,000 prompts held (0.1 to 0.6 s on two busy cores).
    assert max(latencies) < 1.0, f"/healthz took up to {max(latencies):.3f} s during the upload"
    assert statistics.median(latencies) < 0.1
    assert len(latencies) >= 20, "the upload ended before it could be watched"


def test_one_prompt_past_the_limit_is_refused_before_the_rest_of_the_upload_is_sent(
    settings: Settings, redis: Redis, session_factory
) -> None:  # type: ignore[no-untyped-def]
    limited = settings.model_copy(update={"max_prompts_per_batch": 1000})
    with live_api(limited, api_key(session_factory)) as api:
        host, port = urlsplit(api.url).hostname, urlsplit(api.url).port
        assert host is not None and port is not None
        with socket.create_connection((host, port), timeout=30) as connection:
            connection.sendall(
                (
                    "POST /v1/batches HTTP/1.1\r\n"
                    f"Host: {host}\r\n"
                    f"Authorization: Bearer {api.key}\r\n"
                    f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n"
                ).encode()
            )
            opening = (
                f"--{BOUNDARY}\r\n"
                'Content-Disposition: form-data; name="file"; filename="p.jsonl"\r\n'
                "Content-Type: application/jsonl\r\n\r\n"
            ).encode()
            send_chunk(connection, opening + b"".join(prompt_line(n) for n in range(1001)))
            # The body never ends: only a server that refused at prompt 1,001 answers now.
            head, payload = read_response(connection)
    assert head.startswith(b"HTTP/1.1 422"), head
    assert json.loads(payload) == {
        "detail": "prompts: at most 1000 per batch; the file has more (line 1001 holds prompt 1001)"
    }


def send_chunk(connection: socket.socket, data: bytes) -> None:
    connection.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def read_response(connection: socket.socket) -> tuple[bytes, bytes]:
    """The status line and headers, and the body, of the server's answer."""
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += connection.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head, body


def test_lines_cut_anywhere_between_pieces_parse_as_the_whole_file() -> None:
    body = b"".join(prompt_line(number) for number in range(3)) + b"\n" + prompt_line(3).strip()
    whole = PromptLines(max_prompts=10)
    whole.feed(body)
    for size in (1, 7, 300):
        pieces = PromptLines(max_prompts=10)
        for start in range(0, len(body), size):
            pieces.feed(body[start : start + size])
        assert [p.question for p in pieces.finish()] == [p.question for p in whole.finish()]
    assert [prompt._line for prompt in whole.finish()] == [1, 2, 3, 5]  # line 4 is blank
