"""API latency under concurrent load: C clients create, poll, list and download batches against a
running server (uvicorn, N worker processes) while one sampling worker processes them.

Each client loops: POST a small batch -> GET it every --poll-interval until it ends -> list the
newest batches -> download its pairs. Prints per operation: count, errors, p50/p95/p99 latency,
and overall requests/s; the goal is zero errors and polling p99 under 50 ms.

    python -m benchmarks.load                         # 32 clients, 60 s, 2 API processes
    python -m benchmarks.load --clients 64 --api-workers 1
    python -m benchmarks.load --smoke                 # 4 clients, 5 s (CI)
    python -m benchmarks.load --slow-downloads 16     # then again beside 16 slow downloads
With --slow-downloads N a second round runs the same clients while N readers (of 4 other
projects) download a big batch's pairs a few KB per second, and both polling p99s are printed;
the goal there is < 100 ms: a slow reader must not hold what the other requests need.
The worker serves a tiny random model (tests/tiny_model.py, hf engine) with the rule judge: cheap,
so what is measured is the API. The clients run on uvloop with aiohttp, whose per-request CPU is
a fraction of httpx's: on 2 shared cores the load generator's own cost would show as latency.
Uses DATABASE_URL / REDIS_URL when set, else embedded services in --data-dir.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import httpx
import typer
import uvloop
from rich.console import Console
from rich.table import Table

from app.kernel.config import Settings, get_settings
from app.kernel.process import die_with_parent, settings_environment, stop_rq_worker
from app.launch import backing_services, bearer
from app.services.api_keys import create_key, issue_key

console = Console()
OPERATIONS = ("create", "poll", "list", "download")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
POLL_P99_GOAL_MS = 50.0
POLL_P99_GOAL_WITH_SLOW_DOWNLOADS_MS = 100.0
SLOW_PROJECTS = 4
"""Projects the slow readers belong to: N readers spread over them (each under its cap)."""
SLOW_BATCH_PAIRS = 10_000
"""Pairs of each batch the slow readers download (~20 MB: more than the sockets hold)."""
PROMPTS = [
    {
        "id": f"q{i}",
        "question": f"A bond pays a {i + 4}% coupon on $1,000. Annual coupon?\n"
        f"A. ${i + 4}\nB. ${(i + 4) * 10}\nC. ${(i + 4) * 100}",
        "reference_answer": "B",
    }
    for i in range(2)
]


@dataclass
class Stats:
    """What the clients saw: latencies (seconds) and errors, per operation."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERATIONS, 0))
    error_samples: list[str] = field(default_factory=list)
    batches_completed: int = 0
    pairs: int = 0

    def record(self, operation: str, seconds: float, problem: str | None = None) -> None:
        if problem is not None:
            self.errors[operation] = self.errors.get(operation, 0) + 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{operation}: {problem}")
        if operation in self.latencies:
            self.latencies[operation].append(seconds)

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


@dataclass(frozen=True)
class Answer:
    """What a client keeps of a response: its body, read to the last byte."""

    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def timed(
    stats: Stats,
    operation: str,
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    expect: int,
    **kwargs: Any,
) -> Answer | None:
    """One request, read to the last byte, its latency recorded; None when it failed."""
    started = time.perf_counter()
    try:
        async with client.request(method, url, **kwargs) as response:
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        stats.record(operation, time.perf_counter() - started, f"{type(error).__name__}: {error}")
        return None
    seconds = time.perf_counter() - started
    if response.status != expect:
        stats.record(operation, seconds, f"{response.status} {body[:200]!r}")
        return None
    stats.record(operation, seconds)
    return Answer(body)


async def client_loop(
    url: str,
    key: str,
    body: dict[str, Any],
    deadline: float,
    poll_interval: float,
    stats: Stats,
    open_batches: set[str],
    seed: int,
) -> None:
    """One client: create -> poll until it ends -> list -> download, until the deadline.

    Independent clients do not poll in step: each waits a random 0.5-1.5 poll intervals (the
    mean stays the interval) and starts within the first interval."""
    rng = random.Random(seed)

    def pause() -> float:
        return poll_interval * rng.uniform(0.5, 1.5)

    await asyncio.sleep(poll_interval * rng.random())
    async with aiohttp.ClientSession(
        base_url=url, headers=bearer(key), timeout=aiohttp.ClientTimeout(total=30)
    ) as client:
        while time.perf_counter() < deadline:
            created = await timed(stats, "create", client, "POST", "/v1/batches", 201, json=body)
            if created is None:
                await asyncio.sleep(pause())
                continue
            batch_id = created.json()["id"]
            open_batches.add(batch_id)
            status = created.json()["status"]
            while status not in TERMINAL and time.perf_counter() < deadline:
                await asyncio.sleep(pause())
                polled = await timed(stats, "poll", client, "GET", f"/v1/batches/{batch_id}", 200)
                if polled is not None:
                    status = polled.json()["status"]
            if time.perf_counter() >= deadline:
                break
            open_batches.discard(batch_id)
            await timed(stats, "list", client, "GET", "/v1/batches", 200, params={"limit": 20})
            if status == "completed":
                stats.batches_completed += 1
                pairs = await timed(
                    stats, "download", client, "GET", f"/v1/batches/{batch_id}/pairs", 200
                )
                if pairs is not None:
                    stats.pairs += sum(1 for line in pairs.body.splitlines() if line)


@dataclass(frozen=True)
class SlowDownloads:
    """`count` readers, spread over the (key, path) sources, that read a few KB per second."""

    sources: list[tuple[str, str]]
    count: int
    bytes_per_read: int = 4096
    seconds_between_reads: float = 1.0


async def slow_download(
    url: str, source: tuple[str, str], slow: SlowDownloads, deadline: float, refused: list[str]
) -> None:
    """One slow reader, until the deadline: it reads a few KB, waits, reads a few KB..."""
    key, path = source
    try:
        async with (
            aiohttp.ClientSession(base_url=url, headers=bearer(key)) as client,
            client.get(path) as response,
        ):
            if response.status != 200:
                refused.append(f"{response.status} {(await response.read())[:200]!r}")
                return
            while time.perf_counter() < deadline:
                if not await response.content.read(slow.bytes_per_read):
                    return
                await asyncio.sleep(slow.seconds_between_reads)
    except (aiohttp.ClientError, TimeoutError) as error:
        refused.append(f"cut off: {type(error).__name__}: {error}")


async def run_clients(
    url: str,
    key: str,
    body: dict[str, Any],
    clients: int,
    seconds: float,
    poll_interval: float,
    slow: SlowDownloads | None = None,
) -> tuple[Stats, float, set[str]]:
    stats, open_batches = Stats(), set[str]()
    started = time.perf_counter()
    deadline = started + seconds
    refused: list[str] = []
    readers = (
        [
            slow_download(url, slow.sources[i % len(slow.sources)], slow, deadline, refused)
            for i in range(slow.count)
        ]
        if slow is not None
        else []
    )
    await asyncio.gather(
        *readers,
        *(
            client_loop(url, key, body, deadline, poll_interval, stats, open_batches, seed)
            for seed in range(clients)
        ),
    )
    for problem in refused:
        stats.record("slow download", 0.0, problem)
    return stats, time.perf_counter() - started, open_batches


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """The API answers /healthz with 200 (60 s at most)."""
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not answer within 60 s; see {log}")


@contextmanager
def child(command: list[str], settings: Settings, log: Path, **env: str) -> Iterator[Any]:
    """A child process with these settings as its environment, stopped with SIGTERM at the end."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env={**os.environ, **settings_environment(settings), **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # a killed benchmark leaves nothing behind
        )
        try:
            yield process
        finally:
            stop_rq_worker(process)


def warm_up(url: str, key: str, body: dict[str, Any]) -> None:
    """One batch end to end before the clock starts: the worker is up and its model loaded."""
    with httpx.Client(base_url=url, headers=bearer(key), timeout=30) as client:
        response = client.post("/v1/batches", json=body)
        response.raise_for_status()
        batch_id = response.json()["id"]
        give_up = time.monotonic() + 180
        while (batch := client.get(f"/v1/batches/{batch_id}").json())["status"] not in TERMINAL:
            if time.monotonic() > give_up:
                raise RuntimeError(f"warm-up batch {batch_id} still {batch['status']} after 180 s")
            time.sleep(0.2)
    if batch["status"] != "completed":
        raise RuntimeError(f"warm-up batch ended {batch['status']}: {batch.get('error')}")


def cancel_leftovers(url: str, key: str, batch_ids: set[str]) -> None:
    """Batches the deadline cut off are cancelled: no work left behind (not timed)."""
    with httpx.Client(base_url=url, headers=bearer(key), timeout=30) as client:
        for batch_id in batch_ids:
            client.post(f"/v1/batches/{batch_id}/cancel")  # 409 if it ended meanwhile: fine


def print_report(
    stats: Stats,
    elapsed: float,
    clients: int,
    api_workers: int,
    *,
    slow_downloads: int = 0,
    goal_ms: float = POLL_P99_GOAL_MS,
) -> float | None:
    """The figures of one round; returns its polling p99 (ms), None without polls."""
    beside = f", beside {slow_downloads} slow downloads" if slow_downloads else ""
    table = Table(
        title=f"load: {clients} clients, {elapsed:.0f} s, {api_workers} API worker "
        f"process(es){beside}"
    )
    for column in ("operation", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for operation in OPERATIONS:
        values = stats.latencies[operation]
        figures = (
            [f"{percentile(values, share) * 1000:.1f}" for share in (0.50, 0.95, 0.99)]
            if values
            else ["-"] * 3
        )
        table.add_row(
            operation,
            str(len(values)),
            str(stats.errors[operation]),
            f"{len(values) / elapsed:.1f}",
            *figures,
        )
    console.print(table)
    all_latencies = [value for values in stats.latencies.values() for value in values]
    print(f"requests: {stats.requests}")
    print(f"requests/s: {stats.requests / elapsed:.1f}")
    if all_latencies:
        print(
            "latency, all requests (ms): "
            + ", ".join(
                f"p{int(share * 100)} {percentile(all_latencies, share) * 1000:.1f}"
                for share in (0.50, 0.95, 0.99)
            )
        )
    print(f"batches completed and downloaded: {stats.batches_completed} ({stats.pairs} pairs)")
    print(f"errors: {stats.error_count}")
    for sample in stats.error_samples:
        print(f"  {sample}")
    polls = stats.latencies["poll"]
    if not polls:
        print("polling p99: n/a (no polls)")
        return None
    p99 = percentile(polls, 0.99) * 1000
    verdict = "met" if p99 < goal_ms else "missed"
    print(f"polling p99{beside}: {p99:.1f} ms (goal < {goal_ms:.0f} ms: {verdict})")
    return p99


def slow_download_sources(settings: Settings, count: int, *, pairs: int) -> SlowDownloads:
    """SLOW_PROJECTS projects, each with a key and a big batch of pairs made in Postgres."""
    from app.kernel.context import ProcessContext
    from benchmarks.download import store_pairs

    sources = []
    with ProcessContext.open(settings) as context, context.session_factory.begin() as session:
        for i in range(SLOW_PROJECTS):
            key = create_key(session, project=f"load-slow-{i}", name="load")
            batch_id = store_pairs(session, project_id=key.key.project_id, pairs=pairs)
            sources.append((key.secret, f"/v1/batches/{batch_id}/pairs"))
    return SlowDownloads(sources=sources, count=count)


def main(
    clients: Annotated[int, typer.Option(help="Concurrent clients.")] = 32,
    seconds: Annotated[float, typer.Option(help="How long the clients run.")] = 60.0,
    poll_interval: Annotated[
        float, typer.Option(help="Mean seconds between a client's polls (each 0.5-1.5x).")
    ] = 0.1,
    api_workers: Annotated[
        int, typer.Option(help="Uvicorn worker processes (2: one per core of this machine).")
    ] = 2,
    samples: Annotated[int, typer.Option(help="Samples per prompt (2 prompts a batch).")] = 2,
    max_tokens: Annotated[int, typer.Option(help="Policy max_tokens.")] = 16,
    smoke: Annotated[bool, typer.Option(help="4 clients for 5 s (CI).")] = False,
    slow_downloads: Annotated[
        int,
        typer.Option(help="Then a second round beside this many slow downloads (0: none)."),
    ] = 0,
    port: int = 8797,
    data_dir: Path = Path("data/bench"),
) -> None:
    if smoke:
        clients, seconds = 4, 5.0
    from tests.tiny_model import build_tiny_model

    model = str(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
    # Each client has at most one batch open, but a batch cut off by an earlier run's deadline
    # may still be open in a reused database: a 429 here would be an error, not load shedding.
    settings = get_settings().model_copy(
        update={
            "data_dir": data_dir,
            "max_open_batches_per_project": max(10_000, clients),
            # The operator offers the tiny model by its folder: batches may name only such models.
            "base_models": {**get_settings().base_models, model: model},
        }
    )
    body = {
        "prompts": PROMPTS,
        "policy": {
            "engine": "hf",
            "model": model,
            "samples_per_prompt": samples,
            "max_tokens": max_tokens,
            "seed": 0,
        },
        "judge": {"engine": "rule"},
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    api_command = [
        *(sys.executable, "-m", "uvicorn", "app.main:app_from_environment", "--factory"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", str(api_workers)),
        *("--log-level", "warning", "--no-access-log"),
    ]
    worker_command = [sys.executable, "-m", "app.cli", "worker", "--policy", f"hf:{model}"]
    with (
        backing_services(settings, reclaim_running=False) as bound,
        child(api_command, bound, data_dir / "load-api.log") as api,
        # One torch thread: the worker shares the CPU with the API and the clients.
        child(worker_command, bound, data_dir / "load-worker.log", OMP_NUM_THREADS="1"),
    ):
        wait_until_ready(url, api, data_dir / "load-api.log")
        key = issue_key(bound, project="load", name="load")
        warm_up(url, key, body)
        rounds: list[SlowDownloads | None] = [None]
        if slow_downloads:
            pairs = 1_000 if smoke else SLOW_BATCH_PAIRS
            rounds.append(slow_download_sources(bound, slow_downloads, pairs=pairs))
        results = []
        for slow in rounds:
            stats, elapsed, leftovers = uvloop.run(
                run_clients(url, key, body, clients, seconds, poll_interval, slow)
            )
            cancel_leftovers(url, key, leftovers)
            results.append((stats, elapsed, slow))
    p99s = [
        print_report(
            stats,
            elapsed,
            clients,
            api_workers,
            slow_downloads=0 if slow is None else slow.count,
            goal_ms=POLL_P99_GOAL_MS if slow is None else POLL_P99_GOAL_WITH_SLOW_DOWNLOADS_MS,
        )
        for stats, elapsed, slow in results
    ]
    if slow_downloads:
        print(
            f"polling p99 (ms): plain {p99s[0] or float('nan'):.1f} (goal < "
            f"{POLL_P99_GOAL_MS:.0f}), beside {slow_downloads} slow downloads "
            f"{p99s[1] or float('nan'):.1f} (goal < {POLL_P99_GOAL_WITH_SLOW_DOWNLOADS_MS:.0f})"
        )


if __name__ == "__main__":
    typer.run(main)
