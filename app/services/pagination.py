"""Keyset pagination, newest first, for rows with `created_at` and `id`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session


def newest_first(model: Any, query: Select[Any], *, cursor: Any | None, limit: int) -> Select[Any]:
    """`query` ordered newest first, `limit` rows after `cursor` (the last row already seen)."""
    query = query.order_by(model.created_at.desc(), model.id.desc())
    if cursor is not None:
        query = query.where(
            (model.created_at < cursor.created_at)
            | ((model.created_at == cursor.created_at) & (model.id < cursor.id))
        )
    return query.limit(limit)


def newest_first_page(
    session: Session, model: Any, query: Select[Any], *, cursor: Any | None, limit: int
) -> tuple[list[Any], bool]:
    """One page of `query` ordered newest first; `cursor` is the last row of the previous page.
    Returns the rows and whether more follow."""
    rows = list(session.scalars(newest_first(model, query, cursor=cursor, limit=limit + 1)))
    return rows[:limit], len(rows) > limit
