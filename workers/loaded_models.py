"""The models a worker has loaded: each (engine, model) once per process, found through the
kernel's catalog for the project whose work it runs."""

from __future__ import annotations

from app.kernel.catalog import find_model, model_location
from app.kernel.context import ProcessContext
from app.kernel.queue import ModelRef
from app.kernel.registered_models import ModelNotFoundError, not_allowed_message
from workers.engines.base import Engine
from workers.engines.registry import load_engine, loaded_engine
from workers.engines.tokens import TokenCounter, load_token_counter

LOCAL_ENGINES = ("hf", "vllm")
"""Engines that load weights in the worker (the openai engine names a model a server holds)."""


def local_model(context: ProcessContext, model: ModelRef, *, project_id: str) -> str:
    """What the engine loads for a model name, checked against the catalog of the project whose
    work this is: the catalog's folder or hub id for a local engine (a project's trained model, a
    configured model, a registered one, built on first use); the name itself for a model a
    server holds."""
    found = context.transaction(
        lambda session: find_model(session, context.settings, model.model, project_id=project_id)
    )
    if found is None:
        raise ModelNotFoundError(f"model: {not_allowed_message(model.model)}")
    if model.engine not in LOCAL_ENGINES:
        return model.model
    return model_location(found, context.settings.models_dir)


def engine_for(context: ProcessContext, model: ModelRef, *, project_id: str) -> Engine:
    """The loaded model; each (engine, model) is loaded once per process."""
    settings = context.settings
    return load_engine(
        engine=model.engine,
        model=local_model(context, model, project_id=project_id),
        models_dir=settings.models_dir,
        device=settings.device,
        options=settings.engine_options.get(model.engine, {}),
        max_loaded=settings.max_loaded_models,
    )


def token_counter_for(context: ProcessContext, model: ModelRef, *, project_id: str) -> TokenCounter:
    """The model's token counter, from its engine if loaded here, else its tokenizer alone."""
    settings = context.settings
    options = settings.engine_options.get(model.engine, {})
    local = local_model(context, model, project_id=project_id)
    engine = loaded_engine(
        engine=model.engine, model=local, device=settings.device, options=options
    )
    if engine is not None:
        return engine.count_tokens
    return load_token_counter(
        engine=model.engine,
        model=local,
        models_dir=settings.models_dir,
        tokenizer=options.get("tokenizer"),
    )
