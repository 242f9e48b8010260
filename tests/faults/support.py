"""What the fault tests share: the batch they submit, worker processes, polling, row counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import Settings
from app.kernel.models import Batch, Chunk, PreferencePair, Sample, Verdict
from app.kernel.models.statuses import TERMINAL_BATCH_STATUSES

REPO = Path(__file__).resolve().parents[2]
QUESTION = "What is 2 + 2?\nA. 5\nB. 4"
# Two-digit case numbers: a poison "(case 01)" must not also match "(case 10)".
PROMPTS = [
    {"id": f"q{i}", "question": f"{QUESTION} (case {i:02d})", "reference_answer": "B"}
    for i in range(12)
]
"""Three chunks of four (the test settings' chunk_size)."""
CANNED_OPTIONS: dict[str, Any] = {
    "policy": {"model": "canned-policy", "samples_per_prompt": 2},
    "judge": {"model": "canned-judge"},
}
EXPECTED_ROWS = {"samples": 24, "verdicts": 36, "pairs": 24}
"""12 prompts x 2 answers (one right, one wrong): 24 FAP + 12 SCP verdicts, 12 + 12 pairs."""

SETTINGS_ENVIRONMENT = (
    "database_url",
    "redis_url",
    "queue_name",
    "data_dir",
    "models_dir",
    "chunk_size",
    "min_chunk_size",
    "chunk_timeout_s",
    "chunk_lease_s",
    "chunk_max_attempts",
    "reaper_interval_s",
    "db_retry_s",
    "judge_retries",
)


class WorkerProcess:
    """`python -m tests.faults.fault_worker` with these settings; its log goes to a file."""

    def __init__(self, settings: Settings, log_path: Path, **faults: object) -> None:
        environment = dict(os.environ)
        for name in SETTINGS_ENVIRONMENT:
            environment[name.upper()] = str(getattr(settings, name))
        # The models batches may name, as every worker must know them (JSON, like BASE_MODELS).
        environment["BASE_MODELS"] = json.dumps(settings.base_models)
        environment |= {f"FAULT_{name.upper()}": str(value) for name, value in faults.items()}
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.fault_worker"],
                cwd=REPO,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, like an OOM kill or a pulled plug."""
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(
    condition: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.05
) -> Any:
    """Poll until condition() is truthy and return it; fail naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def batch_status(session_factory: sessionmaker[Session], batch_id: str) -> str:
    with session_factory() as session:
        return session.scalars(select(Batch.status).where(Batch.id == batch_id)).one()


def finished(session_factory: sessionmaker[Session], batch_id: str) -> str | None:
    status = batch_status(session_factory, batch_id)
    return status if status in TERMINAL_BATCH_STATUSES else None


def chunks_of(session_factory: sessionmaker[Session], batch_id: str) -> list[Chunk]:
    with session_factory() as session:
        return list(
            session.scalars(select(Chunk).where(Chunk.batch_id == batch_id).order_by(Chunk.index))
        )


def stored_rows(session_factory: sessionmaker[Session], batch_id: str) -> dict[str, int]:
    """Rows stored for the batch, after checking none is stored twice under its natural key."""
    with session_factory() as session:
        duplicates = [
            session.execute(
                select(*key)
                .where(model.batch_id == batch_id)
                .group_by(*key)
                .having(func.count() > 1)
            ).all()
            for model, key in (
                (Sample, (Sample.prompt_id, Sample.sample_index)),
                (Verdict, (Verdict.sample_id, Verdict.kind)),
                (PreferencePair, (PreferencePair.batch_id, PreferencePair.content_hash)),
            )
        ]
        assert duplicates == [[], [], []]
        return {
            name: session.scalar(
                select(func.count()).select_from(model).where(model.batch_id == batch_id)
            )
            or 0
            for name, model in (
                ("samples", Sample),
                ("verdicts", Verdict),
                ("pairs", PreferencePair),
            )
        }


def submit(client: TestClient, prompts: list[dict[str, Any]] = PROMPTS) -> str:
    """Create a batch of canned-model work over the API; its id."""
    response = client.post("/v1/batches", json={"prompts": prompts, **CANNED_OPTIONS})
    assert response.status_code == 201, response.text
    return response.json()["id"]
