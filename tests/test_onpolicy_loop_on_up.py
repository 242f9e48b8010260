"""The on-policy loop on `findap up`, as a new user runs it: train a DPO job on SmolLM2, then
sample a batch from the model it made, with no restart and no extra command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MODEL_CACHE
from tests.live import free_port
from tests.training.jobs import preference_lines

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "app" / "examples" / "finance_mc.jsonl"


class UpProcess:
    """`findap up` in a process of its own, its output gathered line by line."""

    def __init__(self, data_dir: Path, port: int, *, columns: int = 300) -> None:
        environment = {
            name: value
            for name, value in os.environ.items()
            if name not in ("DATABASE_URL", "REDIS_URL", "POLICIES", "JUDGES")
        }
        environment |= {
            "DATA_DIR": str(data_dir),
            "MODELS_DIR": str(MODEL_CACHE),
            "COLUMNS": str(columns),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "up", "--port", str(port)],
            cwd=REPO,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.unavailable = 0
        """Polls the API answered 503 (a waiting client retries them)."""
        self.log_path = data_dir.parent / "up.log"
        threading.Thread(target=self._gather, daemon=True).start()

    def _gather(self) -> None:
        assert self.process.stdout is not None
        with self.log_path.open("w") as log:
            for line in self.process.stdout:
                self.lines.append(line)
                log.write(line)
                log.flush()

    def first_key(self, timeout_s: float = 120) -> str:
        """The API key `findap up` prints on a fresh data folder."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(r"shown only now: (fdp_\S+)", line)
                if found:
                    return found.group(1)
            assert self.process.poll() is None, "".join(self.lines)
            time.sleep(0.2)
        raise AssertionError("no key printed:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[UpProcess, httpx.Client]]:
    port = free_port()
    process = UpProcess(tmp_path / "data", port)
    try:
        key = process.first_key()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as api:
            yield process, api
    finally:
        process.stop()


def wait_for(
    up: UpProcess, api: httpx.Client, path: str, ended: set[str], timeout_s: float
) -> dict[str, Any]:
    """Poll until the status is one of `ended` (the test fails past timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = api.get(path)
        if answer.status_code == 503:  # Postgres busy for a moment: a client polls again
            up.unavailable += 1
            time.sleep(1)
            continue
        assert answer.status_code == 200, (answer.text, up.log_path)
        found: dict[str, Any] = answer.json()
        if found["status"] in ended:
            return found
        time.sleep(1)
    raise AssertionError(f"{path} still {found['status']} after {timeout_s} s: {found}")


def test_a_model_trained_on_up_is_the_policy_of_the_next_batch_without_a_restart(
    up: tuple[UpProcess, httpx.Client],
) -> None:
    process, api = up
    started = time.monotonic()
    body = "".join(json.dumps(line) + "\n" for line in preference_lines())
    uploaded = api.post(
        "/v1/files",
        files={"file": ("pairs.jsonl", body.encode(), "application/jsonl")},
        data={"purpose": "preference"},
    )
    assert uploaded.status_code == 201, uploaded.text
    created = api.post(
        "/v1/training-jobs",
        json={
            "method": "dpo",
            "base_model": "smollm2-135m-instruct",
            "data": {"files": [uploaded.json()["id"]]},
            "hyperparameters": {"max_steps": 2, "batch_size": 2, "max_length": 256},
            "suffix": "loop",
        },
    )
    assert created.status_code == 201, created.text
    job = wait_for(
        process, api, f"/v1/training-jobs/{created.json()['id']}", {"succeeded", "failed"}, 900
    )
    assert job["status"] == "succeeded", job["error"]
    trained = job["output_model"]
    trained_at = time.monotonic()

    questions = [json.loads(line) for line in EXAMPLES.read_text().splitlines()[:3]]
    submitted = api.post(
        "/v1/batches",
        json={
            "prompts": questions,
            "policy": {"model": trained, "samples_per_prompt": 2, "max_tokens": 32, "seed": 0},
            "judge": {"engine": "rule"},
        },
    )
    assert submitted.status_code == 201, submitted.text
    batch = wait_for(
        process,
        api,
        f"/v1/batches/{submitted.json()['id']}",
        {"completed", "failed", "cancelled"},
        600,
    )
    done = time.monotonic()
    assert batch["status"] == "completed", (batch, "".join(process.lines[-40:]))
    assert batch["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert batch["sample_count"] == 6
    samples = api.get(f"/v1/batches/{batch['id']}/samples", params={"limit": 10}).json()
    assert {sample["policy_model"] for sample in samples["data"]} == {trained}
    assert process.process.poll() is None  # the same `findap up`, never restarted
    print(
        f"\nloop on findap up: DPO job {trained_at - started:.0f} s, "
        f"batch on the trained model {done - trained_at:.0f} s, total {done - started:.0f} s, "
        f"{process.unavailable} poll(s) answered 503"
    )
