"""API shapes of reviews: a person's verdict on one answer, and the review queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.kernel.batch_options import StrictModel
from app.schemas.page import ListPage
from app.schemas.sample import SampleOut


class ReviewCreate(StrictModel):
    """A person's reading of an answer; it replaces the judge's for pairs and calibration."""

    final_answer_correct: bool = Field(description="Whether the answer's final answer is right.")
    first_wrong_step: int | None = Field(
        default=None,
        description="The first wrong step (1-based, as the service numbers the answer's steps; "
        "see `steps` on the sample), or null: no step is wrong.",
    )
    correction: str | None = Field(
        default=None,
        description="The corrected replacement of first_wrong_step: required with a wrong step, "
        "null without one.",
    )


class ReviewOut(BaseModel):
    id: int
    object: Literal["review"] = "review"
    batch_id: str
    sample_id: int
    reviewer: str = Field(description="The name of the API key that made the review.")
    created_at: datetime
    before: dict[str, Any] = Field(
        description="What counted before: the judge's verdict (source judge) or the previous "
        "review's (source review): final_answer_correct, first_wrong_step, correction."
    )
    after: dict[str, Any] = Field(description="The reviewer's: the same fields.")


class RebuiltPairs(BaseModel):
    withdrawn: list[int] = Field(description="Ids of the answer's pairs the review replaced.")
    created: list[int] = Field(description="Ids of the pairs built from the review.")


class ReviewResult(BaseModel):
    review: ReviewOut
    pairs: RebuiltPairs


class ReviewList(ListPage):
    data: list[ReviewOut]
    first_id: int | None
    last_id: int | None


class QueuedAnswer(BaseModel):
    id: int = Field(description="The sample's id.")
    object: Literal["review_queue.item"] = "review_queue.item"
    reasons: list[str] = Field(
        description="Why it comes first: judge_unparseable, failed_validation, "
        "rollout_disagreement, rule_disagreement; empty for the rest."
    )
    prompt_index: int
    sample: SampleOut


class ReviewQueue(ListPage):
    data: list[QueuedAnswer]
    first_id: int | None
    last_id: int | None
