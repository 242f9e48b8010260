"""Helpers for processes that start other processes: the worker and trainer processes of
`findap up`, and the trainer of each training job."""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import time
from typing import Any

from pydantic import SecretStr

from app.kernel.config import Settings


def settings_environment(settings: Settings) -> dict[str, str]:
    """These settings as environment variables, so a child process reads the same ones
    (secrets as themselves, not the mask a dump shows)."""
    environment = {}
    for name, value in settings.model_dump(mode="json").items():
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr):
            value = secret.get_secret_value()
        if value is not None:
            environment[name.upper()] = value if isinstance(value, str) else json.dumps(value)
    return environment


def die_with_parent() -> None:
    """In a child before exec: get SIGKILL when the parent dies, so no child outlives it."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_rq_worker(process: subprocess.Popen[Any]) -> None:
    """Stop a worker process the way RQ wants: a first SIGTERM finishes its current job, a
    second stops it now (a training job cut off so is failed with its last checkpoint); killed
    if it still runs 30 s later."""
    for _ in range(2):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
