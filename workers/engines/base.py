"""The interface every generation engine implements: chat conversations in, K texts out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Message = dict[str, str]
"""One chat message: {"role": "system" | "user" | "assistant", "content": "..."}."""


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How to decode: n completions per conversation, greedy when temperature is 0."""

    n: int = 1
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    """When set, every completion must be JSON valid against this schema (constrained decoding)."""
    json_schemas: tuple[dict[str, Any], ...] | None = None
    """Instead of json_schema: one schema per conversation, in order (e.g. each answer's own
    valid step numbers), so that conversations with different schemas still share one call."""


def schemas_for(params: SamplingParams, count: int) -> list[dict[str, Any] | None]:
    """The JSON schema of each of `count` conversations (None: unconstrained)."""
    if params.json_schemas is None:
        return [params.json_schema] * count
    if params.json_schema is not None:
        raise ValueError("json_schema, json_schemas: set one of them, not both")
    if len(params.json_schemas) != count:
        raise ValueError(
            f"json_schemas: must hold one schema per conversation ({count}), "
            f"got {len(params.json_schemas)}"
        )
    return list(params.json_schemas)


def continues_final_message(conversation: list[Message]) -> bool:
    """Whether the conversation ends in an assistant message for the model to go on writing
    (a step prefix to finish), rather than asking for a new reply."""
    return bool(conversation) and conversation[-1]["role"] == "assistant"


def check_sampling_params(params: SamplingParams) -> None:
    """Raise ValueError naming the first SamplingParams field that no engine can honour."""
    if params.n < 1:
        raise ValueError(f"n: must be at least 1, got {params.n}")
    if params.max_tokens < 1:
        raise ValueError(f"max_tokens: must be at least 1, got {params.max_tokens}")
    if params.temperature < 0:
        raise ValueError(f"temperature: must be 0 or more, got {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise ValueError(f"top_p: must be in (0, 1], got {params.top_p}")


FinishReason = Literal["stop", "length"]
"""Why a completion ended: the model stopped ("stop"), or it ran into max_tokens ("length")."""


class RequestRejectedError(Exception):
    """The model server refused the request itself (an HTTP 4xx such as a schema it does not
    take, an unknown model, a bad key): sending the same request again cannot succeed."""


@dataclass(frozen=True)
class Completion:
    text: str
    completion_tokens: int
    finish_reason: FinishReason = "stop"
    """"length" marks an answer cut at max_tokens: it is stored as truncated, never judged."""


def finish_reason_of(reported: object) -> FinishReason:
    """An engine's own finish reason as ours: only a cut at the token limit is "length"."""
    return "length" if reported == "length" else "stop"


@dataclass(frozen=True)
class Generation:
    """All completions of one conversation, plus the prompt's token count."""

    prompt_tokens: int
    completions: list[Completion] = field(default_factory=list)


@runtime_checkable
class Engine(Protocol):
    """A loaded model that turns conversations into completions, batched in one call."""

    model_name: str
    supports_json_schema: bool

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        """Return one Generation (with params.n completions) per conversation, in order."""
        ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token count of each text under this model's tokenizer."""
        ...
