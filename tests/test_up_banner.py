"""What `findap up` prints for a person to copy (URLs, the first key, the metrics token, the
curl and login commands) comes out as whole lines at any width, and works as pasted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.live import free_port
from tests.test_onpolicy_loop_on_up import UpProcess

REPO = Path(__file__).resolve().parents[1]


def printed_lines(up: UpProcess, last_starts: str, timeout_s: float = 60) -> list[str]:
    """The lines `findap up` printed, once one starts with `last_starts`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = [line.rstrip("\n") for line in list(up.lines)]
        if any(line.lstrip().startswith(last_starts) for line in lines):
            return lines
        assert up.process.poll() is None, "".join(up.lines)
        time.sleep(0.2)
    raise AssertionError(f"no line starting {last_starts!r}:\n" + "".join(up.lines))


def pasted(line: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The line run by a shell as a person pastes it."""
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "FINDAP_CONFIG": str(tmp_path / "client.toml"),
        "COLUMNS": "40",
    }
    return subprocess.run(
        ["bash", "-c", line],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_up_prints_whole_lines_that_work_as_pasted_in_a_40_column_pipe(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = UpProcess(tmp_path / "data", port, columns=40)  # its stdout is a pipe
    try:
        key = up.first_key()
        lines = printed_lines(up, "findap login")
        token = (tmp_path / "data" / "metrics_token").read_text().strip()
        expected = [
            f"findap is up at {url}  (API docs: {url}/docs)",
            f"dashboard: {url}/dashboard",
            f"metrics: {url}/metrics  with  Authorization: Bearer {token}",
            f"data folder: {(tmp_path / 'data').resolve()}   Ctrl-C stops everything",
            f"first API key (project default), shown only now: {key}",
            f"  curl -H 'Authorization: Bearer {key}' {url}/v1/batches",
            f"  findap login --url {url} --key {key}   # then: findap submit …",
        ]
        for line in expected:
            assert line in lines, "\n".join(lines)
        assert all(len(line) > 40 for line in expected)

        curl = pasted(expected[5], tmp_path)
        assert curl.returncode == 0, curl.stderr
        assert json.loads(curl.stdout)["data"] == []
        metrics = pasted(f"curl -sf -H 'Authorization: Bearer {token}' {url}/metrics", tmp_path)
        assert metrics.returncode == 0 and "findap_http_requests_total" in metrics.stdout
        login = pasted(expected[6], tmp_path)
        assert login.returncode == 0, login.stdout + login.stderr
        listed = pasted("findap models", tmp_path)
        assert listed.returncode == 0, listed.stdout + listed.stderr
    finally:
        up.stop()
