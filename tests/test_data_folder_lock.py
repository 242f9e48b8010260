"""One `findap up` (or `demo`) per data folder: a second one is refused with the reason and the
first keeps running; a process stops only the embedded servers it started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis import Redis
from sqlalchemy import create_engine, text

from app.embedded import start_embedded_services
from app.launch import DataFolderInUseError, data_folder_lock
from tests.live import free_port
from tests.test_onpolicy_loop_on_up import UpProcess

REPO = Path(__file__).resolve().parents[1]


def test_the_data_folder_lock_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    with data_folder_lock(tmp_path):
        with pytest.raises(DataFolderInUseError) as refused, data_folder_lock(tmp_path):
            pass
        assert f"the data folder {tmp_path.resolve()} is in use by another `findap up`" in str(
            refused.value
        )
    with data_folder_lock(tmp_path):  # released with the block
        pass


def findap(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "REDIS_URL", "POLICIES", "JUDGES")
    }
    environment |= {"DATA_DIR": str(data_dir), "COLUMNS": "300"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *arguments],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_up_or_demo_on_a_folder_in_use_is_refused_and_the_first_keeps_running(
    tmp_path: Path,
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    first = UpProcess(data_dir, port)
    try:
        key = first.first_key()
        for arguments in (["up", "--port", str(free_port())], ["demo", "--port", str(free_port())]):
            second = findap(data_dir, *arguments)
            assert second.returncode == 1, second.stdout + second.stderr
            assert f"the data folder {data_dir.resolve()} is in use by another `findap up`" in (
                second.stdout
            )
        assert first.process.poll() is None
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as api:
            assert api.get("/healthz").json() == {"status": "ok", "database": "ok", "queue": "ok"}
            listed = api.get("/v1/batches", headers={"Authorization": f"Bearer {key}"})
            assert listed.status_code == 200
    finally:
        first.stop()
    assert first.process.returncode == 0, "".join(first.lines)


def test_a_process_that_joined_the_embedded_servers_leaves_them_running(tmp_path: Path) -> None:
    services = start_embedded_services(tmp_path)
    try:
        joined = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nfrom app.embedded import start_embedded_services\n"
                "start_embedded_services(__import__('pathlib').Path(sys.argv[1])).stop()",
                str(tmp_path),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert joined.returncode == 0, joined.stderr
        assert Redis.from_url(services.redis_url).ping()
        engine = create_engine(services.database_url)
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
        engine.dispose()
    finally:
        services.stop()
