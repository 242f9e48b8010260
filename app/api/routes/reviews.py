"""Reviews of a batch's answers: a person's verdict, first wrong step and correction; the
review queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import KeyNameDep, ProjectDep, ReadSessionDep, SessionDep
from app.api.errors import BODY_ERRORS, V1_ERRORS
from app.schemas.review import ReviewCreate, ReviewList, ReviewQueue, ReviewResult
from app.services import review_queue as queue_service
from app.services import reviews as review_service

router = APIRouter(prefix="/v1/batches", tags=["reviews"], responses=V1_ERRORS)


@router.post(
    "/{batch_id}/samples/{sample_id}/review", response_model=ReviewResult, responses=BODY_ERRORS
)
def review_sample(
    batch_id: str,
    sample_id: int,
    body: ReviewCreate,
    session: SessionDep,
    project: ProjectDep,
    reviewer: KeyNameDep,
) -> ReviewResult:
    """Store a person's review of an answer (the judge's verdicts stay as they were) and rebuild
    the answer's pairs from it: its old pairs are withdrawn, new ones carry `reviewed: true`."""
    result = review_service.review_answer(
        session, batch_id, sample_id, body, project_id=project, reviewer=reviewer
    )
    session.commit()
    return result


@router.get("/{batch_id}/samples/{sample_id}/reviews", response_model=ReviewList)
def list_sample_reviews(
    batch_id: str,
    sample_id: int,
    session: ReadSessionDep,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> ReviewList:
    """An answer's reviews, oldest first; the newest one counts."""
    data, has_more = review_service.list_reviews(
        session, batch_id, sample_id, project_id=project, limit=limit, after=after
    )
    return ReviewList.of(data, has_more)


@router.get("/{batch_id}/review-queue", response_model=ReviewQueue)
def review_queue(
    batch_id: str,
    session: ReadSessionDep,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> ReviewQueue:
    """Judged answers nobody reviewed yet: those whose judge reply was unparseable, whose
    first-error analysis failed validation, or where the judge disagreed with the rollouts or
    the rule verifier come first; then the rest, by id. `after`: the last id of a page."""
    data, has_more = queue_service.review_queue(
        session, batch_id, project_id=project, limit=limit, after=after
    )
    return ReviewQueue.of(data, has_more)
