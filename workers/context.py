"""What a worker process keeps for its whole life: settings, DB sessions, loaded engines."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings, get_settings
from app.db.session import make_engine, make_session_factory
from workers.engines.base import Engine
from workers.engines.registry import load_engine


@dataclass
class WorkerContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    name: str

    def engine(self, *, engine: str, model: str) -> Engine:
        """The loaded model; each (engine, model) is loaded once per process."""
        return load_engine(
            engine=engine,
            model=model,
            models_dir=self.settings.models_dir,
            device=self.settings.device,
            options=self.settings.engine_options.get(engine, {}),
        )


_context: WorkerContext | None = None


def init_context(settings: Settings) -> WorkerContext:
    """Set up this process's worker context (done once, by whoever starts the worker)."""
    global _context
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set for the worker")
    _context = WorkerContext(
        settings=settings,
        session_factory=make_session_factory(make_engine(settings.database_url)),
        name=f"{socket.gethostname()}:{os.getpid()}",
    )
    return _context


def get_context() -> WorkerContext:
    """The process's context; built from the environment if nobody set one up."""
    return _context or init_context(get_settings())
