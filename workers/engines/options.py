"""Each engine's own settings as one typed model: what ENGINE_OPTIONS (a worker setting, JSON by
engine) may hold for it, checked when the engine is loaded and passed to it as that model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class HFOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    max_batch_sequences: int = Field(
        default=64, ge=1, description="Sequences decoded at once; more are decoded in turns."
    )


class VLLMOptions(BaseModel):
    """vLLM's LLM() arguments; any other key is passed on to LLM() as it is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    dtype: str = "auto"
    max_model_len: int | None = Field(default=None, ge=16)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    tensor_parallel_size: int = Field(default=1, ge=1)
    enforce_eager: bool = False
    seed: int = 0


class OpenAIOptions(BaseModel):
    """An OpenAI-compatible server: `base_url` is the API root with its version, like the
    OpenAI SDK's (http://host:8000/v1); requests go to base_url + /chat/completions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    api_key: str | None = None
    served_model: str | None = Field(
        default=None, min_length=1, description="The server's name for the model (default: ours)."
    )
    max_concurrency: int = Field(default=16, ge=1, le=1024, description="Requests in flight.")
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=100)
    retry_backoff_s: float = Field(
        default=1.0, ge=0, description="First backoff, doubled per retry with jitter, to 30 s."
    )
    tokenizer: str | None = Field(
        default=None, description="A local tokenizer folder for exact token counts (else ~4 chars)."
    )
    supports_n: bool = True
    supports_json_schema: bool = True

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, base_url: str) -> str:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL like http://host:8000/v1")
        return base_url.rstrip("/")

    @field_validator("tokenizer")
    @classmethod
    def _local_folder(cls, tokenizer: str | None) -> str | None:
        if tokenizer is not None and not Path(tokenizer).expanduser().is_dir():
            raise ValueError("must be a local tokenizer folder")
        return tokenizer


ENGINE_OPTIONS: dict[str, type[BaseModel]] = {
    "hf": HFOptions,
    "vllm": VLLMOptions,
    "openai": OpenAIOptions,
}


def options_error(error: ValidationError, *, prefix: str = "") -> ValueError:
    """One line per problem, each naming the field and the value: `max_concurrency: Input
    should be greater than or equal to 1, got 0`."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        if item["type"] == "missing":
            problems.append(f"{prefix}{field}: required")
            continue
        message = item["msg"].removeprefix("Value error, ")
        given = f", got {item['input']!r}"
        problems.append(f"{prefix}{field}: {message}{given}")
    return ValueError("; ".join(problems))


def engine_options(engine: str, values: Mapping[str, Any]) -> BaseModel:
    """ENGINE_OPTIONS.<engine> checked against the engine's model (ValueError naming the field)."""
    try:
        return ENGINE_OPTIONS[engine].model_validate(dict(values))
    except ValidationError as error:
        raise options_error(error, prefix=f"ENGINE_OPTIONS.{engine}.") from None
