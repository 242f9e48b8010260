"""API shapes of batches: what a caller sends and what the service answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from app.kernel.batch_options import (  # noqa: F401  (the API's names for them)
    JUDGE_ENGINES,
    POLICY_ENGINES,
    EngineName,
    JudgeOptions,
    PairingOptions,
    PairingStrategy,
    PolicyOptions,
    ScpPromptVersion,
    StrictModel,
)


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
        description="fap: correct / wrong / unparseable / truncated (cut at policy.max_tokens, "
        "not judged); scp: parsed / unparseable / failed_validation."
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
