"""Pairs download speed and memory: N pairs made straight in Postgres, downloaded over HTTP as
JSONL and as Parquet from an API process of their own, then the batch's answers with their
verdicts (GET /v1/batches/{id}/samples, N/2 of them) the same way; prints, per download,
rows/s, seconds, bytes, the API process's peak RSS, and the CPU seconds the API, the Postgres
backends and the client (curl, where it is installed; else httpx here) spent, also per 1M rows.

    python -m benchmarks.download                  # 1,000,000 pairs
    python -m benchmarks.download --rows 100000
The pairs go into a throwaway database on DATABASE_URL's server (or on an embedded Postgres in
--data-dir when DATABASE_URL is unset), dropped at the end. Each pair is about 2 KB of JSONL, with
quotes, newlines and non-ASCII text in it, and the provenance a sampled pair carries.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, cast

import httpx
import psycopg
import pyarrow.parquet as pq
import typer
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.kernel.config import Settings, get_settings
from app.kernel.db.migrate import upgrade_database
from app.kernel.db.session import make_engine, make_session_factory
from app.launch import backing_services, bearer
from app.services.api_keys import create_key
from benchmarks.load import child, wait_until_ready

PROVENANCE = (
    '{"source": "policy", "policy_model": "smollm2-135m-instruct", "policy_engine": "hf", '
    '"policy_prompt_version": "policy-v1", "judge_model": "rule", "judge_engine": "rule", '
    '"judge_prompt_version": "rule-v1", "sampling": {"samples_per_prompt": 4, '
    '"temperature": 0.8, "top_p": 1.0, "max_tokens": 512, "seed": 0}}'
)
PAIRS_PER_PROMPT = 4

# One statement per table, rows made by Postgres itself (generate_series): a million pairs in
# about a minute, none of it through Python.
MAKE_PAIRS = [
    """INSERT INTO batches (id, project_id, status, policy, judge, pairing, total_prompts,
        chunk_size, created_at, completed_at)
    VALUES (:batch_id, :project_id, 'completed', '{}', '{}', '{}', :prompts, 64, now(), now())""",
    """INSERT INTO chunks (batch_id, index, status, stage, n_prompts, attempts, created_at)
    VALUES (:batch_id, 0, 'succeeded', 'judge', :prompts, 1, now())""",
    """INSERT INTO prompts (batch_id, index, custom_id, question, chunk_id)
    SELECT CAST(:batch_id AS varchar), i, 'q' || i, 'Question ' || i,
        (SELECT id FROM chunks WHERE batch_id = CAST(:batch_id AS varchar))
    FROM generate_series(0, :prompts - 1) AS i""",
    """INSERT INTO samples (batch_id, prompt_id, sample_index, text, prompt_tokens,
        completion_tokens, policy_model, policy_prompt_version, created_at)
    SELECT CAST(:batch_id AS varchar), prompt.id, side, 'an answer', 10, 10, 'smollm2',
        'policy-v1', now()
    FROM prompts AS prompt, generate_series(0, 1) AS side WHERE prompt.batch_id = :batch_id""",
    """INSERT INTO preference_pairs (batch_id, prompt_id, kind, prompt, chosen, rejected,
        chosen_sample_id, rejected_sample_id, content_hash, token_count, provenance, created_at)
    SELECT CAST(:batch_id AS varchar), prompt.id, CASE WHEN n % 3 = 0 THEN 'scp' ELSE 'fap' END,
        jsonb_build_array(jsonb_build_object('role', 'user', 'content',
            'A bond pays a ' || (n % 9 + 1) || E'% coupon on €1,000 — the annual coupon?\\n'
            || E'"A." $10\\nB. $50\\nC. $90 ' || repeat(md5(n::text), 6))),
        jsonb_build_array(jsonb_build_object('role', 'assistant', 'content',
            E'Step 1: the coupon rate times the face value.\\nStep 2: '
            || repeat(md5((n + 1)::text), 15) || E'\\nAnswer: B')),
        jsonb_build_array(jsonb_build_object('role', 'assistant', 'content',
            E'Step 1: the coupon is paid twice a year.\\nStep 2: '
            || repeat(md5((n + 2)::text), 15) || E'\\nAnswer: A')),
        chosen.id, rejected.id, md5(n::text), 300 + n % 200, CAST(:provenance AS jsonb), now()
    FROM prompts AS prompt
    JOIN samples AS chosen ON chosen.prompt_id = prompt.id AND chosen.sample_index = 0
    JOIN samples AS rejected ON rejected.prompt_id = prompt.id AND rejected.sample_index = 1
    CROSS JOIN LATERAL generate_series(0, :per_prompt - 1) AS copy
    CROSS JOIN LATERAL (SELECT prompt.index * :per_prompt + copy AS n) AS numbered
    WHERE prompt.batch_id = :batch_id AND n < :pairs""",
    # Each answer's verdicts, for the samples download: a final-answer verdict on both (the
    # first right, the second wrong), a first-error analysis on the wrong one.
    """INSERT INTO verdicts (batch_id, sample_id, kind, outcome, verdict, extracted_answer,
        justification, correct_prefix, wrong_step, wrong_step_number, correction, raw_output,
        attempts, judge_model, prompt_version, prompt_tokens, completion_tokens, created_at)
    SELECT CAST(:batch_id AS varchar), sample.id, kind.name, 'parsed',
        CASE WHEN kind.name = 'scp' THEN NULL WHEN sample.sample_index = 0 THEN 'correct'
            ELSE 'wrong' END,
        CASE WHEN kind.name = 'fap' THEN 'B' END, 'The reference says B; ' || md5(sample.id::text),
        CASE WHEN kind.name = 'scp' THEN 'Step 1: the coupon is paid twice a year.' END,
        CASE WHEN kind.name = 'scp' THEN 'Step 2: ' || md5(sample.id::text) END,
        CASE WHEN kind.name = 'scp' THEN 2 END,
        CASE WHEN kind.name = 'scp' THEN 'Step 2: 5% of €1,000 is €50.' END,
        '{"verdict": "…", "justification": "' || repeat(md5(sample.id::text), 4) || '"}',
        1, 'rule', kind.name || '-v1', 100, 30, now()
    FROM samples AS sample
    JOIN (VALUES ('fap'), ('scp')) AS kind (name)
        ON kind.name = 'fap' OR sample.sample_index = 1
    WHERE sample.batch_id = :batch_id""",
    "ANALYZE",
]


def store_pairs(session: Session, *, project_id: str, pairs: int) -> str:
    """A completed batch of this project holding `pairs` pairs, made in Postgres; its id."""
    batch_id = f"batch_{uuid.uuid4().hex}"
    parameters = {
        "batch_id": batch_id,
        "project_id": project_id,
        "pairs": pairs,
        "prompts": max(1, -(-pairs // PAIRS_PER_PROMPT)),
        "per_prompt": PAIRS_PER_PROMPT,
        "provenance": PROVENANCE,
    }
    for statement in MAKE_PAIRS:
        session.execute(text(statement), parameters)
    return batch_id


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A new, migrated database on this server, dropped at the end."""
    name = f"findap_bench_download_{uuid.uuid4().hex[:8]}"
    admin = make_url(server_url).set(drivername="postgresql", database="postgres")
    admin_dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_database(url)
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far; 0 if it is gone or not visible."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds of each Postgres backend serving this database (when Postgres runs on this
    machine: on a shared machine that, not wall time, says what a download costs Postgres)."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        pids = connection.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return {pid: cpu_seconds(pid) for (pid,) in pids}


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (or VmHWM: its peak so far), KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


@contextmanager
def peak_rss(pid: int) -> Iterator[list[int]]:
    """The highest RSS (KiB) the process reaches inside the block, sampled every 20 ms."""
    peak = [rss_kib(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_kib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


@dataclass(frozen=True)
class Measured:
    format: str
    """What was downloaded: the format, `samples-` before it for the answers."""
    rows: int
    seconds: float
    bytes: int
    rss_before_mib: float
    rss_peak_mib: float
    api_cpu_s: float
    postgres_cpu_s: float
    client_cpu_s: float

    def report(self) -> str:
        return (
            f"{self.format:8} rows {self.rows:,}  seconds {self.seconds:.1f}  "
            f"rows/s {self.rows / self.seconds:,.0f}  bytes {self.bytes:,} "
            f"({self.bytes / self.seconds / 1e6:.0f} MB/s)  API RSS before "
            f"{self.rss_before_mib:.0f} MiB, peak {self.rss_peak_mib:.0f} MiB "
            f"(+{self.rss_peak_mib - self.rss_before_mib:.0f})  CPU s: API "
            f"{self.api_cpu_s:.1f}, Postgres {self.postgres_cpu_s:.1f}, client "
            f"{self.client_cpu_s:.1f}{self.per_million_rows()}"
        )

    def per_million_rows(self) -> str:
        """CPU seconds per 1M rows of each side: unlike rows/s, steady on a shared machine."""
        if not self.rows:
            return ""
        scale = 1e6 / self.rows
        return (
            f" (per 1M rows: API {self.api_cpu_s * scale:.1f}, Postgres "
            f"{self.postgres_cpu_s * scale:.1f}, client {self.client_cpu_s * scale:.1f})"
        )


@dataclass(frozen=True)
class Fetched:
    bytes: int
    newlines: int
    client_cpu_s: float


def fetch_with_curl(url: str, headers: dict[str, str], spool: Path | None) -> Fetched:
    """The body read by curl (a C client in a process of its own, as a real client on another
    machine would cost the server nothing): into spool, or piped here to count its newlines."""
    command = ["curl", "--silent", "--show-error", "--fail", "--output", str(spool or "-")]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    started_cpu = time.process_time()
    size = newlines = 0
    with subprocess.Popen([*command, url], stdout=subprocess.PIPE) as curl:
        output = cast(io.BufferedReader, curl.stdout)
        buffer = bytearray(1 << 20)
        while read := output.readinto(buffer):
            size += read
            newlines += buffer.count(b"\n", 0, read)
        _, status, usage = os.wait4(curl.pid, 0)
        curl.returncode = os.waitstatus_to_exitcode(status)
    if curl.returncode:
        raise RuntimeError(f"curl {url}: exit status {curl.returncode}")
    if spool is not None:
        size = spool.stat().st_size
    own_cpu = time.process_time() - started_cpu
    return Fetched(size, newlines, own_cpu + usage.ru_utime + usage.ru_stime)


def fetch_with_httpx(url: str, headers: dict[str, str], spool: Path | None) -> Fetched:
    """The body read by httpx, here (where curl is missing; it costs the shared cores more)."""
    started_cpu = time.process_time()
    size = newlines = 0
    with (
        httpx.Client(headers=headers, timeout=600) as client,
        client.stream("GET", url) as response,
        open(spool or os.devnull, "wb") as file,
    ):
        response.raise_for_status()
        for piece in response.iter_raw(1 << 20):
            size += len(piece)
            newlines += piece.count(b"\n")
            if spool is not None:
                file.write(piece)
    return Fetched(size, newlines, time.process_time() - started_cpu)


def download(
    url: str,
    headers: dict[str, str],
    format: str,
    api_pid: int,
    database_url: str,
    spool: Path,
    label: str | None = None,
) -> Measured:
    """One download read to the end; Parquet is spooled to a file to count its rows."""
    fetch = fetch_with_curl if shutil.which("curl") else fetch_with_httpx
    rss_before = rss_kib(api_pid)
    api_cpu_before, postgres_cpu_before = cpu_seconds(api_pid), backend_cpu(database_url)
    with peak_rss(api_pid) as peak:
        started = time.perf_counter()
        fetched = fetch(f"{url}?format={format}", headers, None if format == "jsonl" else spool)
        seconds = time.perf_counter() - started
    api_cpu = cpu_seconds(api_pid) - api_cpu_before
    postgres_cpu = sum(
        used - postgres_cpu_before.get(pid, 0.0) for pid, used in backend_cpu(database_url).items()
    )
    if format == "jsonl":
        rows = fetched.newlines
    else:
        rows = pq.ParquetFile(spool).metadata.num_rows
        spool.unlink()
    return Measured(
        label or format,
        rows,
        seconds,
        fetched.bytes,
        rss_before / 1024,
        peak[0] / 1024,
        api_cpu,
        postgres_cpu,
        fetched.client_cpu_s,
    )


def main(
    rows: Annotated[int, typer.Option(help="Pairs to make and download.")] = 1_000_000,
    formats: Annotated[
        str, typer.Option(help="Comma-separated: jsonl, parquet.")
    ] = "jsonl,parquet",
    samples: Annotated[
        bool,
        typer.Option(
            help="Also download the batch's answers (2 per 4 pairs, with their verdicts) from "
            "GET /v1/batches/{id}/samples, in each format."
        ),
    ] = True,
    port: int = 8796,
    data_dir: Path = Path("data/bench"),
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = get_settings().model_copy(update={"data_dir": data_dir})
    with (
        backing_services(settings, reclaim_running=False) as bound,
        throwaway_database(bound.require_database_url()) as database_url,
    ):
        engine = make_engine(database_url)
        started = time.perf_counter()
        with make_session_factory(engine).begin() as session:
            key = create_key(session, project="bench-download", name="download")
            batch_id = store_pairs(session, project_id=key.key.project_id, pairs=rows)
        engine.dispose()
        print(f"made {rows:,} pairs in Postgres in {time.perf_counter() - started:.0f} s")
        served: Settings = bound.model_copy(update={"database_url": database_url})
        url = f"http://127.0.0.1:{port}"
        api_command = [
            *(sys.executable, "-m", "uvicorn", "app.main:app_from_environment", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--log-level", "warning", "--no-access-log"),
        ]
        log = data_dir / "download-api.log"
        with child(api_command, served, log) as api:
            wait_until_ready(url, api, log)
            for format in formats.split(","):
                with tempfile.TemporaryDirectory(dir=data_dir) as spool_dir:
                    measured = download(
                        f"{url}/v1/batches/{batch_id}/pairs",
                        bearer(key.secret),
                        format,
                        api.pid,
                        database_url,
                        Path(spool_dir) / "pairs",
                    )
                print(measured.report())
                if measured.rows != rows:
                    raise RuntimeError(f"{format}: downloaded {measured.rows} rows of {rows}")
            answers = 2 * max(1, -(-rows // PAIRS_PER_PROMPT))
            for format in formats.split(",") if samples else []:
                with tempfile.TemporaryDirectory(dir=data_dir) as spool_dir:
                    measured = download(
                        f"{url}/v1/batches/{batch_id}/samples",
                        bearer(key.secret),
                        format,
                        api.pid,
                        database_url,
                        Path(spool_dir) / "samples",
                        label=f"samples-{format}",
                    )
                print(measured.report())
                if measured.rows != answers:
                    raise RuntimeError(
                        f"samples {format}: downloaded {measured.rows} rows of {answers}"
                    )
            print(f"API peak RSS over the run (VmHWM): {rss_kib(api.pid, 'VmHWM') / 1024:.0f} MiB")


if __name__ == "__main__":
    typer.run(main)
