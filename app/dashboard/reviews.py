"""Dashboard review: accept or overturn an answer's verdict, move its first wrong step, edit the
correction (plain form POSTs, under the same-origin and CSRF checks), and the batch's review
queue."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Cookie, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from app.api.deps import SessionDep
from app.dashboard.auth import COOKIE, DashboardProject
from app.dashboard.routes import missing, project_name, render, sample_viewer_page
from app.dashboard.security import GUARDS
from app.kernel.answers import segment_steps
from app.kernel.errors import InvalidInputError, NotFoundError
from app.kernel.models import Prompt, Sample
from app.schemas.review import ReviewCreate
from app.services import batches as batch_service
from app.services import review_queue as queue_service
from app.services import reviews as review_service
from app.services.api_keys import key_name

QUEUE_PAGE = 20

router = APIRouter(prefix="/dashboard", include_in_schema=False, dependencies=GUARDS)


@router.post("/batches/{batch_id}/samples/{sample_id}/review", response_model=None)
def review_answer(
    request: Request,
    batch_id: str,
    sample_id: int,
    session: SessionDep,
    project: DashboardProject,
    key: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    action: Annotated[Literal["accept", "overturn", "save"], Form()] = "save",
    final_answer: Annotated[Literal["correct", "wrong"] | None, Form()] = None,
    first_wrong_step: Annotated[str, Form()] = "",
    correction: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    """Store the signed-in key's review and go back to the answer; a review that does not fit
    the answer shows the page again with the problem under its form."""
    try:
        prompt_index = answer_prompt_index(session, batch_id, sample_id, project_id=project)
        request_body = review_request(
            session, sample_id, action, final_answer, first_wrong_step, correction
        )
        review_service.review_answer(
            session,
            batch_id,
            sample_id,
            request_body,
            project_id=project,
            reviewer=key_name(session, key or ""),
        )
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    except InvalidInputError as error:
        session.rollback()
        return sample_viewer_page(
            request,
            session,
            batch_id,
            prompt_index,
            project=project,
            errors={sample_id: error.detail},
            status_code=422,
        )
    session.commit()
    target = f"/dashboard/batches/{batch_id}/prompts/{prompt_index}"
    if back == "queue":
        target += "?from=queue"
    return RedirectResponse(f"{target}#answer-{sample_id}", status_code=303)


def answer_prompt_index(
    session: SessionDep, batch_id: str, sample_id: int, *, project_id: str
) -> int:
    """The index of the answer's prompt in a batch of this project (NotFoundError otherwise)."""
    batch = batch_service.get_batch(session, batch_id, project_id=project_id)
    index = session.scalar(
        select(Prompt.index)
        .join(Sample, Sample.prompt_id == Prompt.id)
        .where(Sample.id == sample_id, Sample.batch_id == batch.id)
    )
    if index is None:
        raise NotFoundError(f"sample {sample_id} not found in batch {batch_id!r}")
    return index


def review_request(
    session: SessionDep,
    sample_id: int,
    action: str,
    final_answer: str | None,
    first_wrong_step: str,
    correction: str,
) -> ReviewCreate:
    """The review a form asks for: accept (what counts now, as it is), overturn (the final-answer
    verdict flipped, no wrong step), or save (the form's fields)."""
    if action in ("accept", "overturn"):
        sample = session.get_one(Sample, sample_id)
        now = review_service.current_label(session, sample, segment_steps(sample.text))
        if now["final_answer_correct"] is None:
            raise InvalidInputError(
                "final_answer: the judge gave no verdict to accept or overturn; choose one"
            )
        if action == "accept":
            return ReviewCreate(
                final_answer_correct=now["final_answer_correct"],
                first_wrong_step=None if now["final_answer_correct"] else now["first_wrong_step"],
                correction=None if now["final_answer_correct"] else now["correction"],
            )
        return ReviewCreate(final_answer_correct=not now["final_answer_correct"])
    if final_answer is None:
        raise InvalidInputError("final_answer: choose correct or wrong")
    step = first_wrong_step.strip()
    try:
        return ReviewCreate(
            final_answer_correct=final_answer == "correct",
            first_wrong_step=int(step) if step else None,
            correction=correction if step else None,  # no wrong step: nothing to correct
        )
    except (ValueError, ValidationError):
        raise InvalidInputError(
            f"first_wrong_step: a step number or none, got {first_wrong_step!r}"
        ) from None


@router.get("/batches/{batch_id}/review-queue", response_class=HTMLResponse)
def review_queue_page(
    request: Request,
    batch_id: str,
    session: SessionDep,
    project: DashboardProject,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> HTMLResponse:
    """Answers nobody reviewed yet, the doubtful ones first."""
    try:
        batch = batch_service.get_batch(session, batch_id, project_id=project)
        items, has_more = queue_service.review_queue(
            session, batch_id, project_id=project, limit=QUEUE_PAGE, after=after
        )
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    return render(
        request,
        "review_queue.html",
        project=project_name(session, project),
        batch=batch,
        items=items,
        next_after=items[-1].id if has_more and items else None,
    )
