"""Keyset pagination, newest first, for rows with `created_at` and `id`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session


def newest_first_page(
    session: Session, model: Any, query: Select[Any], *, cursor: Any | None, limit: int
) -> tuple[list[Any], bool]:
    """One page of `query` ordered newest first; `cursor` is the last row of the previous page.
    Returns the rows and whether more follow."""
    query = query.order_by(model.created_at.desc(), model.id.desc())
    if cursor is not None:
        query = query.where(
            (model.created_at < cursor.created_at)
            | ((model.created_at == cursor.created_at) & (model.id < cursor.id))
        )
    rows = list(session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit
