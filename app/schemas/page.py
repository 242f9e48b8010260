"""The shape every paged list shares, as GET /v1/batches set it: `limit` and `after` in the
query; `data`, `first_id`, `last_id` and `has_more` in the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, Field

HAS_MORE_HELP = "More follow: pass `last_id` as `after` for the next page."


class ListPage(BaseModel):
    """A page of a list; subclasses give `data`, `first_id` and `last_id` their types."""

    object: Literal["list"] = "list"
    has_more: bool = Field(description=HAS_MORE_HELP)

    @classmethod
    def of(cls, data: Sequence[Any], has_more: bool) -> Self:
        """The page holding `data` (items with an `id`), in the order listed."""
        return cls.model_validate(
            {
                "data": data,
                "first_id": data[0].id if data else None,
                "last_id": data[-1].id if data else None,
                "has_more": has_more,
            }
        )
