"""API shapes of datasets: frozen selections of preference pairs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

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


class DatasetOut(BaseModel):
    id: str
    object: Literal["dataset"] = "dataset"
    name: str
    version: int
    selection: dict[str, Any]
    counts: dict[str, Any] = Field(description="Pairs by kind, total, and left out by the filters.")
    created_at: datetime


class DatasetList(ListPage):
    data: list[DatasetOut]
    first_id: str | None
    last_id: str | None
