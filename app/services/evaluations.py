"""Creating, reading and cancelling evaluations; each runs as a hidden batch of kind
'evaluation' (the chunk machinery: leases, reaper, idempotent writes, routing by model)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.kernel.batch_options import PairingOptions
from app.kernel.chunk_stats import ChunkStats, TokenUsage
from app.kernel.config import Settings
from app.kernel.errors import InvalidInputError, NotFoundError
from app.kernel.models import Batch, Chunk, Evaluation
from app.kernel.models.statuses import BatchKind, RunStatus
from app.kernel.queue import ChunkRoute
from app.schemas.batch import BatchCreate, RequestCounts
from app.schemas.evaluation import EvaluationCreate, EvaluationOut, EvaluationUsage
from app.services import batches as batch_service
from app.services.eval_questions import evaluation_questions
from app.services.eval_report import evaluation_report
from app.services.models import check_model_spec
from app.services.pagination import newest_first
from app.services.tenant_text import shown

NO_PAIRS = PairingOptions(fap=False, scp=False)
"""An evaluation judges final answers only: no first-error analysis, no rollouts, no pairs."""


def create_evaluation(
    session: Session, request: EvaluationCreate, *, project_id: str, settings: Settings
) -> tuple[Evaluation, list[ChunkRoute]]:
    """Store the evaluation and its hidden batch (prompts, chunks); returns the work to queue.
    Every refusal comes before anything is stored."""
    check_model_spec(session, settings, request.model, field="model", project_id=project_id)
    check_limits(request, settings)
    if "max_tokens" not in request.model_fields_set:
        request = request.model_copy(
            update={"max_tokens": min(request.max_tokens, settings.max_tokens)}
        )
    prompts, source_kind, source_id = evaluation_questions(
        session, request, project_id=project_id, settings=settings
    )
    batch_request = BatchCreate(
        prompts=prompts, policy=request.policy(), judge=request.judge, pairing=NO_PAIRS
    )
    batch, routes = batch_service.create_batch(
        session, batch_request, project_id=project_id, limits=settings, kind=BatchKind.EVALUATION
    )
    batch.batch_metadata = request.metadata
    evaluation = Evaluation(
        project_id=project_id,
        batch_id=batch.id,
        model=request.model,
        mode=request.mode,
        samples=request.samples,
        source_kind=source_kind,
        source_id=source_id,
    )
    session.add(evaluation)
    session.flush()
    return evaluation, routes


def check_limits(request: EvaluationCreate, settings: Settings) -> None:
    """The service's limits, named by the evaluation's own fields."""
    if request.samples > settings.max_samples_per_prompt:
        raise InvalidInputError(
            f"samples: at most {settings.max_samples_per_prompt} (MAX_SAMPLES_PER_PROMPT), "
            f"got {request.samples}"
        )
    if "max_tokens" in request.model_fields_set and request.max_tokens > settings.max_tokens:
        raise InvalidInputError(
            f"max_tokens: at most {settings.max_tokens}, got {request.max_tokens}"
        )


def get_evaluation(session: Session, evaluation_id: str, *, project_id: str) -> Evaluation:
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None or evaluation.project_id != project_id:
        raise NotFoundError(f"evaluation {evaluation_id!r} not found")
    return evaluation


def cancel_evaluation(
    session: Session, evaluation_id: str, *, project_id: str
) -> tuple[Evaluation, list[ChunkRoute]]:
    """As a batch's cancel: queued chunks never start, running ones finish."""
    evaluation = get_evaluation(session, evaluation_id, project_id=project_id)
    _, cancelled = batch_service.cancel_batch(
        session,
        evaluation.batch_id,
        project_id=project_id,
        kind=BatchKind.EVALUATION,
        shown_id=evaluation.id,
    )
    return evaluation, cancelled


def list_evaluations(
    session: Session, *, project_id: str, model: str | None, limit: int, after: str | None
) -> tuple[list[Evaluation], bool]:
    """A page of evaluations, newest first (of one model with `model`)."""
    cursor = None if after is None else get_evaluation(session, after, project_id=project_id)
    query = select(Evaluation).where(Evaluation.project_id == project_id)
    if model is not None:
        query = query.where(Evaluation.model == model)
    rows = list(session.scalars(newest_first(Evaluation, query, cursor=cursor, limit=limit + 1)))
    return rows[:limit], len(rows) > limit


def evaluation_out(
    session: Session,
    evaluation: Evaluation,
    live_worker: batch_service.LiveWorkerCheck | None = None,
) -> EvaluationOut:
    """The evaluation with its status (its batch's), counts, report and token usage; with
    `live_worker`, a note when no live worker serves its model."""
    batch = session.get_one(Batch, evaluation.batch_id)
    options = batch.options
    report = evaluation_report(session, batch.id, samples=evaluation.samples)
    prompts_by_status: dict[str, int] = {}
    chunk_counts = {status.value: 0 for status in RunStatus}
    open_stages: set[str] = set()
    for chunk_status, stage, chunks, prompts in session.execute(
        select(Chunk.status, Chunk.stage, func.count(), func.sum(Chunk.n_prompts))
        .where(Chunk.batch_id == batch.id)
        .group_by(Chunk.status, Chunk.stage)
    ):
        prompts_by_status[chunk_status] = prompts_by_status.get(chunk_status, 0) + int(prompts)
        chunk_counts[chunk_status] += chunks
        if chunk_status in (RunStatus.QUEUED, RunStatus.RUNNING):
            open_stages.add(stage)
    usage = TokenUsage()
    for stats in session.scalars(
        select(Chunk.stats).where(Chunk.batch_id == batch.id, Chunk.stats.is_not(None))
    ):
        usage += ChunkStats.model_validate(stats).usage
    judge_tokens = usage.judge_prompt_tokens + usage.judge_completion_tokens
    notes = batch_service.unserved_models(
        batch.status, options, chunk_counts, live_worker, sorted(open_stages)
    )
    if report.truncated:
        notes.append(
            f"{report.truncated} answer(s) were cut at max_tokens ({options.policy.max_tokens}) "
            "and count as wrong; raise max_tokens"
        )
    return EvaluationOut(
        id=evaluation.id,
        model=evaluation.model,
        engine=options.policy.engine,
        mode="direct" if evaluation.mode == "direct" else "cot",
        samples=evaluation.samples,
        temperature=options.policy.temperature,
        max_tokens=options.policy.max_tokens,
        judge=batch.judge,
        source={"kind": evaluation.source_kind, "id": evaluation.source_id},
        metadata=batch.batch_metadata,
        status=batch.status,
        request_counts=RequestCounts(
            total=batch.total_prompts,
            completed=int(prompts_by_status.get(RunStatus.SUCCEEDED, 0) or 0),
            failed=int(prompts_by_status.get(RunStatus.FAILED, 0) or 0),
        ),
        accuracy=report.overall.accuracy,
        pass_at_k=report.overall.pass_at_k,
        majority=report.overall.majority,
        by_task=report.by_task,
        questions=report.overall.questions,
        truncated=report.truncated,
        unparseable=report.unparseable,
        usage=EvaluationUsage(
            prompt_tokens=usage.policy_prompt_tokens,
            completion_tokens=usage.policy_completion_tokens,
            judge_tokens=judge_tokens,
            total_tokens=usage.total,
        ),
        notes=notes,
        error=shown(batch.error),
        created_at=evaluation.created_at,
        completed_at=batch.completed_at,
        failed_at=batch.failed_at,
        cancelled_at=batch.cancelled_at,
    )
