"""API shapes of datasets: frozen selections of preference pairs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.kernel.models.statuses import SignalKind
from app.schemas.batch import StrictModel
from app.schemas.page import ListPage


def all_kinds() -> list[SignalKind]:
    return list(SignalKind)


class DatasetFilters(StrictModel):
    max_tokens: int | None = Field(
        default=None,
        ge=16,
        description="Keep pairs whose prompt plus longer side is at most this many tokens.",
    )
    drop_duplicates: bool = Field(
        default=True, description="Keep one of pairs with the same kind, prompt, chosen, rejected."
    )


class DatasetCreate(StrictModel):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[\w.\-]+$")
    batch_ids: list[str] = Field(min_length=1, max_length=1000)
    kinds: list[SignalKind] = Field(default_factory=all_kinds, min_length=1)
    filters: DatasetFilters = Field(default_factory=DatasetFilters)
    reviewed_only: bool = Field(
        default=False,
        description="Only pairs rebuilt from a person's review (provenance `reviewed: true`).",
    )
    decontaminate_against: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Ids of eval files (purpose `eval`) to check the pairs against: a pair "
        "whose prompt shares a 13-word n-gram, or whose normalised question equals, an eval "
        "question is flagged. The dataset's `contamination` reports what was found.",
    )
    decontaminate: bool = Field(
        default=False,
        description="Drop the flagged pairs from the dataset (needs `decontaminate_against`).",
    )

    @model_validator(mode="after")
    def _decontaminate_needs_eval_files(self) -> DatasetCreate:
        if self.decontaminate and not self.decontaminate_against:
            raise ValueError(
                "decontaminate: needs decontaminate_against to name at least one eval file"
            )
        self.decontaminate_against = list(dict.fromkeys(self.decontaminate_against))
        return self


class Contamination(BaseModel):
    """What checking a dataset's pairs against eval files found."""

    eval_files: list[str]
    ngram_size: int = Field(description="Words per n-gram (13).")
    eval_questions: int = Field(description="Questions in the eval files.")
    questions_matching: int = Field(description="Eval questions some pair matched.")
    pairs_checked: int = Field(description="Pairs of the selection checked.")
    ngram: int = Field(description="Pairs whose prompt shares an n-gram with an eval question.")
    exact_question: int = Field(
        description="Pairs whose normalised question equals an eval question's."
    )
    pairs_flagged: int = Field(description="Pairs matching either way (each counted once).")
    pairs_dropped: int = Field(description="Flagged pairs left out (`decontaminate: true`).")


class DatasetOut(BaseModel):
    id: str
    object: Literal["dataset"] = "dataset"
    name: str
    version: int
    selection: dict[str, Any]
    counts: dict[str, Any] = Field(description="Pairs by kind, total, and left out by the filters.")
    contamination: Contamination | None = Field(
        default=None, description="The check against `decontaminate_against`; null if none."
    )
    created_at: datetime


class DatasetList(ListPage):
    data: list[DatasetOut]
    first_id: str | None
    last_id: str | None
