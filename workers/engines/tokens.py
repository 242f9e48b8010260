"""Counting tokens of a model without loading the model (for the pair length filter)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from app.kernel.registered_models import resolve_model_path

TokenCounter = Callable[[list[str]], list[int]]

_counters: dict[tuple[str, str], TokenCounter] = {}
_lock = threading.Lock()


def estimate_tokens(texts: list[str]) -> list[int]:
    """About four characters a token: for models whose tokenizer is not at hand (remote APIs)."""
    return [math.ceil(len(text) / 4) for text in texts]


def count_with_tokenizer(tokenizer: Any, texts: list[str]) -> list[int]:
    """Token count of each text, without special tokens, in one batched tokenizer call."""
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in encoded]


def load_token_counter(
    *, engine: str, model: str, models_dir: Path, tokenizer: str | None = None
) -> TokenCounter:
    """The model's own tokenizer for local models (hf, vllm) or a remote model whose tokenizer
    is configured (`tokenizer`); otherwise an estimate."""
    source = tokenizer or (None if engine == "openai" else model)
    key = (engine, source or model)
    with _lock:
        if key not in _counters:
            if source is None:
                _counters[key] = estimate_tokens
            else:
                from transformers import AutoTokenizer

                path = resolve_model_path(source, models_dir=models_dir)
                _counters[key] = partial(count_with_tokenizer, AutoTokenizer.from_pretrained(path))
        return _counters[key]
