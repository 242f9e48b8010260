"""API shapes of batches: what a caller sends and what the service answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

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
from app.schemas.calibration import Calibration
from app.schemas.rollouts import RolloutReport


class GoldLabel(StrictModel):
    """What a person knows about a given answer, to measure the judge against."""

    correct: bool = Field(description="Whether the answer's final answer is right.")
    first_wrong_step: int | None = Field(
        default=None,
        ge=1,
        description="A wrong answer's first wrong step (1-based, as the service numbers the "
        "answer's steps), or null when no step is wrong and only the final line is. Leave it out "
        "to calibrate the final-answer verdict only.",
    )

    @model_validator(mode="after")
    def _correct_has_no_wrong_step(self) -> GoldLabel:
        if self.correct and "first_wrong_step" in self.model_fields_set:
            raise ValueError("first_wrong_step: a correct answer has no wrong step")
        return self

    def stored(self) -> dict[str, Any]:
        """As kept with the answer: first_wrong_step only when it was given (null included)."""
        return self.model_dump(include={"correct"} | self.model_fields_set)


class GivenAnswer(StrictModel):
    text: str = Field(min_length=1, max_length=100_000)
    gold: GoldLabel | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must not be blank")
        return text


class PromptIn(StrictModel):
    id: str | None = Field(default=None, max_length=256, description="Your id for this prompt.")
    question: str = Field(min_length=1, max_length=100_000)
    reference_answer: str | None = Field(default=None, max_length=100_000)
    metadata: dict[str, Any] | None = None
    answers: list[GivenAnswer] | None = Field(
        default=None,
        min_length=1,
        description="Answers you already have, as texts or {text, gold}: judged and paired like "
        "sampled ones, and this prompt is not sampled.",
    )

    @field_validator("answers", mode="before")
    @classmethod
    def _texts_are_answers(cls, answers: Any) -> Any:
        if isinstance(answers, list):
            return [{"text": a} if isinstance(a, str) else a for a in answers]
        return answers

    _line: int | None = PrivateAttr(default=None)
    """Its line (JSONL) or row (CSV, Parquet) in an uploaded file (1-based), for messages."""
    _unit: str = PrivateAttr(default="line")

    def place(self, position: int) -> str:
        """This prompt as messages name it: its file line, or its position in the list."""
        return (
            f"file {self._unit} {self._line}" if self._line is not None else f"prompts[{position}]"
        )

    def where(self, position: int, field: str) -> str:
        """A field of this prompt as messages name it."""
        separator = ": " if self._line is not None else "."
        return f"{self.place(position)}{separator}{field}"

    @field_validator("question")
    @classmethod
    def _not_blank(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("must not be blank")
        return question


class BatchOptions(StrictModel):
    """Everything of a batch but its prompts (the form field `options` of a JSONL upload)."""

    policy: PolicyOptions = Field(default_factory=PolicyOptions)
    judge: JudgeOptions = Field(default_factory=JudgeOptions)
    pairing: PairingOptions = Field(default_factory=PairingOptions)
    metadata: dict[str, Any] | None = None
    chunk_size: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Prompts per chunk (one queued job, one engine call per stage), at least "
        "the service's MIN_CHUNK_SIZE (default 8; 422 below it). Default: about an eighth of "
        "the prompts, between MIN_CHUNK_SIZE and CHUNK_SIZE.",
    )


class BatchCreate(BatchOptions):
    prompts: list[PromptIn] = Field(min_length=1)


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchProgress(BaseModel):
    """What the running chunks have done that the counts do not show yet, as their workers
    last reported it (every few seconds; hf reports each decoding step, vllm and openai each
    finished call)."""

    running_chunks: int = Field(description="Chunks whose worker reports progress.")
    chunks_fraction: float = Field(
        description="How far the running chunks have come, summed (each 0 to 1): chunks done "
        "plus this is the chunks' worth of work done."
    )
    prompts_fraction: float = Field(
        description="The same in prompts: prompts done plus this is the prompts' worth done."
    )
    samples_generated: int = Field(
        description="Answers generated and not stored yet (sample_count plus this is all)."
    )
    samples_judged: int = Field(description="Answers judged whose verdicts are not stored yet.")
    tokens_generated: int = Field(
        description="Tokens the running stages generated, not yet in `usage`."
    )
    tokens_per_s: float = Field(description="The running stages' generation speed.")
    elapsed_s: float = Field(description="Seconds since the longest-running stage began.")


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
        "not judged); scp: parsed / no_step_error (the judge found no wrong step: no pair) / "
        "unparseable / failed_validation; rollout (batches with rollouts, once some are "
        "stored): parsed / no_step_error / no_success / undecided / failed_validation."
    )
    pair_counts: dict[str, int] = Field(description="Pairs stored, by kind, and their total.")
    pairs_dropped: dict[str, int] = Field(description="Candidate pairs dropped, by reason.")
    usage: dict[str, int]
    notes: list[str] = Field(description="Why this batch may make few or no pairs of a kind.")
    progress: BatchProgress | None = Field(
        default=None,
        description="Progress inside the running chunks; null when none runs (or the "
        "request lists batches).",
    )
    calibration: Calibration | None = Field(
        default=None,
        description="The judge measured against the gold labels of given answers, so far "
        "(GET /v1/batches/{id} only; None without gold labels).",
    )
    rollouts: RolloutReport | None = Field(
        default=None,
        description="What the rollouts cost and found (GET /v1/batches/{id} of a batch with "
        "judge.scp_method rollouts or consensus; None otherwise).",
    )
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
