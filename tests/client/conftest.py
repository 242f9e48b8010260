"""The client against a live server: the real app under uvicorn, commands run in-process with
typer's runner or as real `findap` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from app.cli import cli
from app.kernel.config import Settings
from tests.conftest import api_key
from tests.live import LiveApi, live_api
from tests.workers.test_pipeline import (  # noqa: F401  (canned: a fixture)
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve_canned,
    submit,
)

FINDAP = Path(sys.executable).with_name("findap")
"""The installed console script, as a user runs it."""
CANNED_FLAGS = [
    "--policy",
    "canned-policy",
    "--judge",
    "canned-judge",
    "--samples",
    "2",
]
"""`findap submit` options for the canned models (2 answers per prompt: one right, one wrong)."""


@pytest.fixture
def server(settings: Settings, redis, session_factory) -> Iterator[LiveApi]:  # type: ignore[no-untyped-def]
    """The API on a free port, with a key of the project `test` (the `client` fixture's)."""
    with live_api(settings, api_key(session_factory)) as api:
        yield api


@pytest.fixture
def client_environment(
    server: LiveApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """FINDAP_URL and FINDAP_KEY of the live server; a config file of the test's own."""
    monkeypatch.delenv("FINDAP_API_KEY", raising=False)
    environment = {
        "FINDAP_URL": server.url,
        "FINDAP_KEY": server.key,
        "FINDAP_CONFIG": str(tmp_path / "findap" / "config.toml"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


@pytest.fixture
def findap(client_environment: dict[str, str]) -> Callable[..., Result]:
    """Run a `findap` command in this process against the live server."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, list(args))

    return run


def start_findap(*args: str, environment: dict[str, str]) -> subprocess.Popen[str]:
    """`findap ARGS` as a process of its own, its output piped (no terminal: plain lines)."""
    return subprocess.Popen(
        [str(FINDAP), *args],
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def completed_batch(client: TestClient, settings: Settings, canned) -> str:  # type: ignore[no-untyped-def]  # noqa: F811
    """A batch of 6 prompts x 2 canned answers, done: 6 FAP and 6 SCP pairs."""
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)
    return batch_id
