"""What a worker process keeps for its whole life: settings, DB sessions, loaded engines."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings, get_settings
from app.db.session import make_engine, make_session_factory
from app.metrics.store import MetricsStore
from app.models import TrainedModel
from app.services.queue import ModelRef
from workers.db import in_transaction
from workers.engines.base import Engine
from workers.engines.registry import load_engine, loaded_engine
from workers.engines.tokens import TokenCounter, load_token_counter

T = TypeVar("T")

LOCAL_ENGINES = ("hf", "vllm")
"""Engines that load weights in the worker (the openai engine names a model a server holds)."""


@dataclass
class WorkerContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    redis: Redis
    name: str

    def transaction(self, work: Callable[[Session], T]) -> T:
        """Run work in one transaction, again while Postgres is unreachable (up to DB_RETRY_S)."""
        return in_transaction(self.session_factory, work, retry_s=self.settings.db_retry_s)

    @property
    def metrics(self) -> MetricsStore:
        """Where this worker's figures for /metrics go (Redis, under the queue prefix)."""
        return MetricsStore(self.redis, self.settings.queue_name)

    def local_model(self, model: ModelRef) -> str:
        """What a local engine loads for a model name: a trained model's or a configured base
        model's folder; anything else (registered name, folder, hub id) as it is."""
        if model.engine not in LOCAL_ENGINES:
            return model.model
        if model.model in self.settings.base_models:
            return self.settings.base_models[model.model]
        trained = self.transaction(lambda session: session.get(TrainedModel, model.model))
        return model.model if trained is None else trained.path

    def engine(self, model: ModelRef) -> Engine:
        """The loaded model; each (engine, model) is loaded once per process."""
        return load_engine(
            engine=model.engine,
            model=self.local_model(model),
            models_dir=self.settings.models_dir,
            device=self.settings.device,
            options=self.settings.engine_options.get(model.engine, {}),
        )

    def token_counter(self, model: ModelRef) -> TokenCounter:
        """The model's token counter, from its engine if loaded here, else its tokenizer alone."""
        options = self.settings.engine_options.get(model.engine, {})
        local = self.local_model(model)
        engine = loaded_engine(
            engine=model.engine, model=local, device=self.settings.device, options=options
        )
        if engine is not None:
            return engine.count_tokens
        return load_token_counter(
            engine=model.engine,
            model=local,
            models_dir=self.settings.models_dir,
            tokenizer=options.get("tokenizer"),
        )


_context: WorkerContext | None = None


def init_context(settings: Settings) -> WorkerContext:
    """Set up this process's worker context (done once, by whoever starts the worker)."""
    global _context
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("DATABASE_URL and REDIS_URL must be set for the worker")
    _context = WorkerContext(
        settings=settings,
        session_factory=make_session_factory(make_engine(settings.database_url)),
        redis=Redis.from_url(settings.redis_url),
        name=f"{socket.gethostname()}:{os.getpid()}",
    )
    return _context


def get_context() -> WorkerContext:
    """The process's context; built from the environment if nobody set one up."""
    return _context or init_context(get_settings())
