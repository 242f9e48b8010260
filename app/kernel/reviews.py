"""What a person's reviews mean to code below the API: the worker must not pair a reviewed
answer by the judge's verdict (the review's pairs replace those)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kernel.models import Review, Sample


def lock_reviewed(session: Session, sample_ids: list[int]) -> set[int]:
    """Of these answers, the reviewed ones; their rows stay share-locked to the end of the
    transaction, so a review (which locks its answer for update) comes wholly before or after
    what this transaction writes about them."""
    if not sample_ids:
        return set()
    session.execute(
        select(Sample.id)
        .where(Sample.id.in_(sample_ids))
        .order_by(Sample.id)
        .with_for_update(read=True)
    ).all()
    return set(session.scalars(select(Review.sample_id).where(Review.sample_id.in_(sample_ids))))
