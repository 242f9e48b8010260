"""`findap wait ID` attaches to a running batch or training job and follows it to its end,
through a restart of the server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import Result

from app.kernel.config import Settings
from app.launch import api_in_thread
from tests.client.conftest import CANNED_OPTIONS, PROMPTS, start_findap, submit
from tests.conftest import api_key
from tests.live import free_port
from tests.workers.test_pipeline import canned, serve_canned  # noqa: F401


def test_wait_on_a_finished_batch_shows_its_counts(
    findap: Callable[..., Result], completed_batch: str
) -> None:
    result = findap("wait", completed_batch)
    assert result.exit_code == 0, result.output
    assert "completed: chunks 2/2, 100% done, samples 12, pairs 12" in result.stdout
    assert "12 (fap 6, scp 6)" in result.stdout


def test_wait_names_the_ids_it_follows(findap: Callable[..., Result]) -> None:
    evaluation = findap("wait", "eval_123")
    assert evaluation.exit_code == 1
    assert evaluation.stderr == "error: 404 evaluation 'eval_123' not found\n"
    dataset = findap("wait", "ds_123")
    assert dataset.exit_code == 1
    assert dataset.stderr == "error: ID: expected a batch_…, eval_… or ftjob_… id, got 'ds_123'\n"


def test_wait_keeps_polling_through_a_server_restart(
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = submit(client, PROMPTS[:4], **CANNED_OPTIONS)
    port = free_port()
    environment = {
        "FINDAP_URL": f"http://127.0.0.1:{port}",
        "FINDAP_API_KEY": api_key(session_factory),
        "FINDAP_CONFIG": str(tmp_path / "config.toml"),
    }
    with api_in_thread(settings, "127.0.0.1", port):
        waiting = start_findap("wait", batch_id, "--interval", "0.2", environment=environment)
        assert waiting.stdout is not None
        shown = [waiting.stdout.readline() for _ in range(3)]
        # While it waits, it says why: no worker serves the batch's models yet.
        assert shown[0].startswith("note: no worker serves policy hf:canned-policy"), shown
        assert shown[1].startswith("note: no worker serves judge hf:canned-judge"), shown
        assert shown[2].startswith("queued: chunks 0/1, 0% done"), shown
    # The server is gone: the client says so once and keeps trying.
    assert waiting.stderr is not None
    lost = waiting.stderr.readline()
    assert lost.startswith(f"lost the findap server at http://127.0.0.1:{port} (cannot reach")
    assert waiting.poll() is None
    with api_in_thread(settings, "127.0.0.1", port):
        serve_canned(settings)  # the batch runs while the server is back
        stdout, stderr = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, stderr
    assert "completed: chunks 1/1, 100% done, samples 8, pairs 8" in stdout
    assert "lost the findap server" not in stderr  # once per outage: it was read above
