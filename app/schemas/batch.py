"""API shapes of batches: what a caller sends and what the service answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.kernel.config import get_settings

ScpPromptVersion = Literal["scp-v1", "scp-steps-v1"]
PairingStrategy = Literal["round_robin", "all"]
POLICY_ENGINES = ("hf", "vllm", "openai")
"""hf: transformers (CPU or GPU); vllm: vLLM in the worker; openai: an OpenAI-compatible server."""
JUDGE_ENGINES = ("hf", "vllm", "openai", "rule")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptIn(StrictModel):
    id: str | None = Field(default=None, max_length=256, description="Your id for this prompt.")
    question: str = Field(min_length=1, max_length=100_000)
    reference_answer: str | None = Field(default=None, max_length=100_000)
    metadata: dict[str, Any] | None = None

    @field_validator("question")
    @classmethod
    def _not_blank(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("must not be blank")
        return question

    @field_validator("id", "question", "reference_answer")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # Postgres text cannot hold NUL characters.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value


class PolicyOptions(StrictModel):
    model: str = Field(default_factory=lambda: get_settings().default_policy_model, min_length=1)
    engine: str = Field(default_factory=lambda: get_settings().default_policy_engine)
    samples_per_prompt: int = Field(default=4, ge=1, le=1024)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, le=131_072)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    prompt_version: Literal["policy-v1"] = "policy-v1"

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> str:
        if engine not in POLICY_ENGINES:
            raise ValueError(f"must be one of {', '.join(POLICY_ENGINES)}, got {engine!r}")
        return engine


class JudgeOptions(StrictModel):
    model: str = Field(default_factory=lambda: get_settings().default_judge_model, min_length=1)
    engine: str = Field(default_factory=lambda: get_settings().default_judge_engine)
    max_tokens: int = Field(default=256, ge=16, le=131_072)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    fap_prompt_version: Literal["fap-v1"] = "fap-v1"
    scp_prompt_version: ScpPromptVersion = Field(
        default="scp-steps-v1",
        description="scp-steps-v1 has the judge pick a step number (robust for small judges); "
        "scp-v1 has it quote the prefix and the wrong step, checked against the answer.",
    )

    @model_validator(mode="before")
    @classmethod
    def _rule_needs_no_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("model") == "rule" and "engine" not in data:
            return {**data, "engine": "rule"}
        if isinstance(data, dict) and data.get("engine") == "rule" and "model" not in data:
            return {**data, "model": "rule"}
        return data

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> str:
        if engine not in JUDGE_ENGINES:
            raise ValueError(f"must be one of {', '.join(JUDGE_ENGINES)}, got {engine!r}")
        return engine


class PairingOptions(StrictModel):
    fap: bool = True
    scp: bool = True
    strategy: PairingStrategy = "round_robin"
    max_pairs_per_prompt: int = Field(default=16, ge=1, le=1024)
    max_pair_tokens: int = Field(default=2048, ge=16, le=131_072)


class BatchOptions(StrictModel):
    """Everything of a batch but its prompts (the form field `options` of a JSONL upload)."""

    policy: PolicyOptions = Field(default_factory=PolicyOptions)
    judge: JudgeOptions = Field(default_factory=JudgeOptions)
    pairing: PairingOptions = Field(default_factory=PairingOptions)
    metadata: dict[str, Any] | None = None
    chunk_size: int | None = Field(default=None, ge=1, le=10_000)


class BatchCreate(BatchOptions):
    prompts: list[PromptIn] = Field(min_length=1)


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchOut(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    status: str
    policy: dict[str, Any]
    judge: dict[str, Any]
    pairing: dict[str, Any]
    metadata: dict[str, Any] | None
    request_counts: RequestCounts
    chunk_counts: dict[str, int]
    sample_count: int
    verdict_counts: dict[str, dict[str, int]] = Field(
        description="fap: correct / wrong / unparseable; scp: parsed / unparseable / "
        "failed_validation."
    )
    pair_counts: dict[str, int] = Field(description="Pairs stored, by kind, and their total.")
    pairs_dropped: dict[str, int] = Field(description="Candidate pairs dropped, by reason.")
    usage: dict[str, int]
    notes: list[str] = Field(description="Why this batch may make few or no pairs of a kind.")
    error: str | None
    created_at: datetime
    in_progress_at: datetime | None
    finalizing_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    cancelling_at: datetime | None
    cancelled_at: datetime | None


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchOut]
    first_id: str | None
    last_id: str | None
    has_more: bool
