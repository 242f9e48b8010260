"""What `findap demo` prints: the client's progress, as `findap submit --wait` shows it, while
its worker's log goes to the file it names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis import Redis

from app import cli
from app.client.errors import ClientError
from app.kernel.config import Settings
from tests.conftest import api_key, bearer
from tests.live import free_port, live_api
from tests.workers.test_pipeline import CANNED_OPTIONS, PROMPTS

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ", re.M)
"""A line in the format of findap's logs (app/kernel/logs.py)."""


def test_demo_shows_progress_and_keeps_the_worker_log_in_the_file_it_names(
    settings: Settings,
    redis: Redis,
    tiny_model_dir: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The demo's run with the tiny model in SmolLM2's place: the same worker process, API and
    # progress display, in seconds.
    tiny = str(tiny_model_dir)
    demo_settings = settings.model_copy(
        update={"data_dir": tmp_path / "data", "policies": [f"hf:{tiny}"], "judges": []}
    )
    options = {
        "policy": {"model": tiny, "samples_per_prompt": 2, "max_tokens": 8, "seed": 0},
        "judge": cli.DEMO_JUDGE,
    }
    out = tmp_path / "pairs.jsonl"
    batch, calibration = cli.run_demo(
        demo_settings, port=free_port(), options=options, out=out, described="tiny policy"
    )
    captured = capfd.readouterr()
    printed = captured.out + captured.err

    log_path = (demo_settings.data_dir / cli.DEMO_LOG).resolve()
    assert f"worker logs: {log_path}\n" in captured.out
    assert f"submitted {batch['id']}: tiny policy\n" in captured.out
    chunks = batch["chunk_counts"]["total"]
    assert f"completed: chunks {chunks}/{chunks}, 100% done" in captured.out
    assert "calibrating the judge on the gold set:" in captured.out
    assert batch["status"] == "completed" and calibration is not None
    assert out.exists()
    assert not LOG_LINE.search(printed), printed
    assert "rq.worker" not in printed and "Job OK" not in printed

    logged = log_path.read_text()
    assert LOG_LINE.search(logged)
    assert "rq.worker" in logged
    assert "Job OK" in logged


def test_demo_stops_naming_the_log_when_its_worker_stopped_before_the_work_ended(
    settings: Settings, redis: Redis, session_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    key = api_key(session_factory)
    stopped = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    stopped.wait()
    log_path = tmp_path / "demo.log"
    with live_api(settings, key) as api:
        created = httpx.post(
            f"{api.url}/v1/batches",
            json={"prompts": PROMPTS[:2], **CANNED_OPTIONS},
            headers=bearer(key),
        )
        assert created.status_code == 201, created.text
        path = f"/v1/batches/{created.json()['id']}"
        with (
            cli.WorkerWatchedConnection(
                url=api.url, key=key, worker=stopped, log_path=log_path
            ) as watched,
            pytest.raises(ClientError) as failed,
        ):
            watched.get(path)
    assert failed.value.message == (
        f"the demo's worker stopped (exit code 3) before {path} ended; "
        f"its log: {log_path.resolve()}"
    )
