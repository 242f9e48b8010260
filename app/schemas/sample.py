"""API shapes of samples with their verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.schemas.calibration import Agreement


class VerdictOut(BaseModel):
    kind: str
    outcome: str
    reason: str | None
    verdict: str | None
    extracted_answer: str | None
    justification: str | None
    correct_prefix: str | None
    wrong_step: str | None
    wrong_step_number: int | None
    correction: str | None
    raw_output: str
    attempts: int
    judge_model: str
    prompt_version: str


class PrefixEstimateOut(BaseModel):
    prefix_steps: int = Field(description="Steps of the answer the prefix holds (0: none).")
    rollouts: int
    successes: int
    unknown: int = Field(description="Continuations cut at max_tokens: neither way.")
    success_rate: float = Field(description="successes / rollouts: the prefix's estimate.")


class ReviewSummary(BaseModel):
    """An answer's newest review: it counts over the judge's verdicts."""

    id: int
    reviewer: str
    created_at: datetime
    final_answer_correct: bool
    first_wrong_step: int | None
    correction: str | None


class SampleOut(BaseModel):
    id: int
    object: Literal["sample"] = "sample"
    prompt_id: int
    custom_id: str | None
    question: str
    reference_answer: str | None
    sample_index: int
    text: str
    completion_tokens: int
    policy_model: str
    policy_prompt_version: str
    source: str = Field(description='"policy" (sampled) or "given" (sent with the prompt).')
    finish_reason: str | None = Field(
        description='"stop", or "length": cut at policy.max_tokens, not judged. None if given.'
    )
    fap: VerdictOut | None
    scp: VerdictOut | None
    gold: dict[str, Any] | None = Field(
        default=None, description="A given answer's gold label: correct, first_wrong_step."
    )
    review: ReviewSummary | None = Field(
        default=None,
        description="The newest review by a person (POST …/review): gold for calibration; the "
        "answer's pairs are built from it.",
    )
    agrees: Agreement | None = Field(
        default=None,
        description="Whether the judge's decisions match the gold label (the newest review's, "
        "where a person reviewed the answer).",
    )
    rollout: VerdictOut | None = Field(
        default=None,
        description="The first wrong step the rollouts found (scp_method rollouts, consensus).",
    )
    prefix_estimates: list[PrefixEstimateOut] | None = Field(
        default=None, description="Each rolled-out prefix's success estimate, by prefix."
    )
    judge_rollout_agreement: Literal["agree", "disagree"] | None = Field(
        default=None,
        description="Whether the judge's first wrong step (scp) and the rollouts' are the same; "
        "null unless both decided.",
    )


class SampleList(BaseModel):
    object: Literal["list"] = "list"
    data: list[SampleOut]
    first_id: int | None
    last_id: int | None
    has_more: bool
