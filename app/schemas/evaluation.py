"""API shapes of evaluations: a model on held-out questions, scored per task."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from app.kernel.batch_options import (
    POLICY_ENGINES,
    EngineName,
    JudgeOptions,
    PolicyOptions,
    StrictModel,
    known_engine,
)
from app.kernel.config import get_settings
from app.schemas.batch import PromptIn, RequestCounts
from app.schemas.page import ListPage

EvalMode = Literal["cot", "direct"]
MAX_EVAL_SAMPLES = 64


class EvaluationCreate(StrictModel):
    model: str = Field(
        min_length=1,
        description="The model evaluated: any model a batch may name (registered, configured, "
        "or one of this project's trained models).",
    )
    engine: str = Field(
        default_factory=lambda: get_settings().default_policy_engine,
        description="The engine that runs it: hf, vllm or openai (as a batch's policy.engine).",
    )
    prompts: list[PromptIn] | None = Field(
        default=None,
        min_length=1,
        description="The questions inline, as a batch's prompts: question, reference_answer, "
        "optional id and metadata.task.",
    )
    file_id: str | None = Field(default=None, description="An uploaded file of purpose eval.")
    dataset_id: str | None = Field(
        default=None,
        description="A dataset: the distinct questions (with their reference answers) behind "
        "its pairs.",
    )
    mode: EvalMode = Field(
        default="cot",
        description="cot: the policy's prompt, numbered steps then an Answer line; direct: the "
        "Answer line only.",
    )
    samples: int = Field(
        default=1,
        ge=1,
        le=MAX_EVAL_SAMPLES,
        description="Answers per question: 1 is greedy (temperature 0); k > 1 samples at "
        "`temperature` and reports pass@k and majority-vote accuracy too.",
    )
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature; default 0 (greedy) for samples 1, else 0.8.",
    )
    max_tokens: int = Field(
        default=1024,
        ge=1,
        le=131_072,
        description="An answer cut at this length counts as truncated (and not correct).",
    )
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    judge: JudgeOptions = Field(
        default_factory=JudgeOptions,
        description="Who checks the final answers, as for batches: the rule verifier "
        '({"model": "rule"}) or an LLM judge. Only the final-answer verdict runs.',
    )
    metadata: dict[str, Any] | None = None
    chunk_size: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Questions per chunk (one queued job, one engine call), as a batch's "
        "chunk_size: default about an eighth of the questions, so several workers share them.",
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> EngineName:
        return known_engine(engine, POLICY_ENGINES)

    @model_validator(mode="after")
    def _one_source(self) -> EvaluationCreate:
        given = [
            name for name in ("prompts", "file_id", "dataset_id") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "prompts, file_id, dataset_id: give exactly one source of questions, got "
                + (", ".join(given) if given else "none")
            )
        return self

    def policy(self) -> PolicyOptions:
        """The hidden batch's policy options: greedy for one sample, unless asked otherwise."""
        temperature = self.temperature
        if temperature is None:
            temperature = 0.0 if self.samples == 1 else 0.8
        return PolicyOptions(
            model=self.model,
            engine=self.engine,
            samples_per_prompt=self.samples,
            temperature=temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
            prompt_version="direct-v1" if self.mode == "direct" else "policy-v1",
        )


class Score(BaseModel):
    """A share of questions with its 95 % Wilson interval."""

    value: float = Field(description="The share, 0 to 1.")
    low: float = Field(description="Lower end of the 95 % Wilson interval.")
    high: float = Field(description="Upper end of the 95 % Wilson interval.")
    n: int = Field(description="Questions it is measured on (those answered and judged).")


class TaskReport(BaseModel):
    """The scores of one task (or of all questions)."""

    questions: int = Field(description="Questions scored (every sample judged or truncated).")
    accuracy: Score | None = Field(
        description="Share of samples whose final answer is correct (samples 1: share of "
        "questions answered correctly); truncated and unparseable answers count as wrong."
    )
    pass_at_k: Score | None = Field(
        default=None,
        description="samples > 1: the unbiased pass@k estimate (Chen et al. 2021).",
    )
    majority: Score | None = Field(
        default=None,
        description="samples > 1: share of questions whose most frequent parseable final "
        "answer is correct (ties: the answer sampled first).",
    )
    truncated: int = Field(description="Answers cut at max_tokens (not judged, not correct).")
    unparseable: int = Field(description="Answers without a final answer the judge could read.")


class EvaluationUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    judge_tokens: int
    total_tokens: int


class EvaluationOut(BaseModel):
    id: str
    object: Literal["evaluation"] = "evaluation"
    model: str
    engine: str
    mode: EvalMode
    samples: int
    temperature: float
    max_tokens: int
    judge: dict[str, Any]
    source: dict[str, str | None] = Field(
        description="Where the questions came from: kind (prompts, file, dataset) and id."
    )
    metadata: dict[str, Any] | None
    status: str = Field(description="As a batch's: queued, in_progress, completed, ….")
    request_counts: RequestCounts
    accuracy: Score | None = Field(
        description="Over all questions scored so far (see TaskReport.accuracy)."
    )
    pass_at_k: Score | None
    majority: Score | None
    by_task: dict[str, TaskReport] = Field(
        description='Per metadata.task of the questions (none: "default").'
    )
    questions: int
    truncated: int
    unparseable: int
    usage: EvaluationUsage
    notes: list[str]
    error: str | None
    created_at: datetime
    completed_at: datetime | None
    failed_at: datetime | None
    cancelled_at: datetime | None


class EvaluationList(ListPage):
    data: list[EvaluationOut]
    first_id: str | None
    last_id: str | None


class AnswerOut(BaseModel):
    """One sampled answer to a question and its verdict."""

    answer: str
    extracted_answer: str | None
    verdict: str | None = Field(
        description="correct, wrong, unparseable, truncated; null while not judged."
    )
    finish_reason: str | None


class EvaluationResult(BaseModel):
    """One question: its answer (the first, for samples > 1) and, for samples > 1, all."""

    id: str = Field(description="The question's id (its position when it had none).")
    task: str
    question: str
    reference_answer: str
    answer: str | None
    extracted_answer: str | None
    verdict: str | None
    finish_reason: str | None
    correct: int = Field(description="Samples judged correct.")
    samples: list[AnswerOut] | None = Field(
        default=None, description="samples > 1: every answer, in sample order."
    )


class EvaluationResultList(ListPage):
    data: list[EvaluationResult]
    first_id: str | None
    last_id: str | None
