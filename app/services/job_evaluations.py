"""A training job's before/after evaluation: the base model's (reused when an earlier run of
the same settings exists) and the output model's, held back until the job's model exists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kernel.config import Settings
from app.kernel.errors import InvalidInputError, NotFoundError
from app.kernel.models import Batch, Evaluation, TrainingJob
from app.kernel.models.statuses import BatchStatus
from app.kernel.queue import ChunkRoute
from app.schemas.evaluation import EvaluationCreate, Score
from app.schemas.training_job import (
    EvaluationDelta,
    EvaluationSummary,
    JobEvaluationOut,
    JobEvaluationRequest,
)
from app.services.eval_report import evaluation_report
from app.services.evaluations import create_evaluation

UNUSABLE = (BatchStatus.FAILED, BatchStatus.CANCELLING, BatchStatus.CANCELLED)
"""An earlier base-model evaluation in these states is not reused."""


def evaluation_request(job: TrainingJob, request: JobEvaluationRequest) -> EvaluationCreate:
    """The base model's evaluation as POST /v1/evaluations would take it."""
    fields = request.model_dump(exclude_none=True, exclude={"judge"})
    return EvaluationCreate(model=job.base_model, judge=request.judge, **fields)


def attach_evaluations(
    session: Session, settings: Settings, job: TrainingJob, request: JobEvaluationRequest
) -> list[ChunkRoute]:
    """Create the job's after-evaluation (waiting) and find or create its before-evaluation;
    returns the before-evaluation's chunks to enqueue (none when reused). Refusals name
    `evaluation.<field>` and come before anything is stored."""
    create = evaluation_request(job, request)
    after, _ = create_named(session, settings, create, project_id=job.project_id)
    waiting = session.get_one(Batch, after.batch_id)
    waiting.status = BatchStatus.WAITING
    after.model = job.output_model
    before = reusable_evaluation(session, create, after, project_id=job.project_id)
    routes: list[ChunkRoute] = []
    if before is None:
        before, routes = create_named(session, settings, create, project_id=job.project_id)
    job.before_evaluation_id = before.id
    job.after_evaluation_id = after.id
    session.flush()
    return routes


def create_named(
    session: Session, settings: Settings, create: EvaluationCreate, *, project_id: str
) -> tuple[Evaluation, list[ChunkRoute]]:
    """create_evaluation, its refusals naming the field under `evaluation.`."""
    try:
        return create_evaluation(session, create, project_id=project_id, settings=settings)
    except NotFoundError as missing:
        field = "file_id" if create.file_id is not None else "dataset_id"
        raise InvalidInputError(f"evaluation.{field}: {missing.detail}") from missing
    except InvalidInputError as refused:
        raise InvalidInputError(f"evaluation.{refused.detail}") from refused


def reusable_evaluation(
    session: Session, create: EvaluationCreate, fresh: Evaluation, *, project_id: str
) -> Evaluation | None:
    """The newest evaluation of the base model with the same questions, mode, samples, engine,
    max_tokens and judge that has not failed or been cancelled."""
    settings_batch = session.get_one(Batch, fresh.batch_id)
    rows = session.execute(
        select(Evaluation, Batch)
        .join(Batch, Batch.id == Evaluation.batch_id)
        .where(
            Evaluation.project_id == project_id,
            Evaluation.model == create.model,
            Evaluation.source_kind == fresh.source_kind,
            Evaluation.source_id == fresh.source_id,
            Evaluation.mode == create.mode,
            Evaluation.samples == create.samples,
            Evaluation.id != fresh.id,
            Batch.status.not_in([str(s) for s in UNUSABLE]),
        )
        .order_by(Evaluation.created_at.desc())
    ).all()
    for evaluation, batch in rows:
        if batch.judge == settings_batch.judge and same_generation(batch, settings_batch):
            return evaluation
    return None


def same_generation(one: Batch, other: Batch) -> bool:
    keys = ("engine", "temperature", "max_tokens", "seed", "prompt_version")
    return all(one.policy.get(key) == other.policy.get(key) for key in keys)


def summary(session: Session, evaluation_id: str | None) -> EvaluationSummary | None:
    evaluation = None if evaluation_id is None else session.get(Evaluation, evaluation_id)
    if evaluation is None:
        return None
    batch = session.get_one(Batch, evaluation.batch_id)
    report = evaluation_report(session, batch.id, samples=evaluation.samples)
    return EvaluationSummary(
        id=evaluation.id,
        model=evaluation.model,
        status=batch.status,
        accuracy=report.overall.accuracy,
        by_task={task: scores.accuracy for task, scores in sorted(report.by_task.items())},
    )


def difference(after: Score | None, before: Score | None) -> float | None:
    if after is None or before is None:
        return None
    return after.value - before.value


def delta(before: EvaluationSummary, after: EvaluationSummary) -> EvaluationDelta | None:
    """after − before, once both completed."""
    if before.status != BatchStatus.COMPLETED or after.status != BatchStatus.COMPLETED:
        return None
    tasks = sorted(set(before.by_task) | set(after.by_task))
    return EvaluationDelta(
        overall=difference(after.accuracy, before.accuracy),
        by_task={
            task: difference(after.by_task.get(task), before.by_task.get(task)) for task in tasks
        },
    )


def job_evaluation_out(session: Session, job: TrainingJob) -> JobEvaluationOut | None:
    """The job's before, after and delta; None when the job asked for no evaluation."""
    if job.before_evaluation_id is None and job.after_evaluation_id is None:
        return None
    before = summary(session, job.before_evaluation_id)
    after = summary(session, job.after_evaluation_id)
    return JobEvaluationOut(
        before=before,
        after=after,
        delta=delta(before, after) if before is not None and after is not None else None,
    )
