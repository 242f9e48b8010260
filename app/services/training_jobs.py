"""Creating, reading and cancelling training jobs; the caller owns the session and transaction."""

from __future__ import annotations

import logging
import math
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from app.kernel.config import Settings
from app.kernel.db.base import utcnow
from app.kernel.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TooManyRequestsError,
)
from app.kernel.job_evaluations import cancel_after_evaluation
from app.kernel.models import Dataset, TrainingCheckpoint, TrainingEvent, TrainingFile, TrainingJob
from app.kernel.models.statuses import RunStatus, TrainingMethod
from app.kernel.models.training_job import new_training_job_id
from app.kernel.queue import JOB_SERIALIZER, training_rq_job_id
from app.kernel.training_schedule import (
    optimizer_steps,
    schedule_problem,
    train_examples,
)
from app.schemas.training_job import (
    CheckpointOut,
    TrainingEventOut,
    TrainingJobCreate,
    TrainingJobOut,
    TrainingProgress,
)
from app.services.datasets import batch_hint
from app.services.job_evaluations import job_evaluation_out
from app.services.models import check_model_spec
from app.services.pagination import newest_first_page
from app.services.tenant_text import shown

log = logging.getLogger(__name__)

FILE_PURPOSES: dict[str, tuple[str, ...]] = {
    TrainingMethod.CPT: ("cpt",),
    TrainingMethod.SFT: ("sft",),
    TrainingMethod.CPT_SFT: ("cpt", "sft"),
    TrainingMethod.DPO: ("preference",),
}
"""The file purposes each method trains on."""

TAKES_DATASETS = frozenset({TrainingMethod.SFT, TrainingMethod.CPT_SFT, TrainingMethod.DPO})
"""Methods that read preference datasets: dpo their pairs, sft the prompt and chosen answer."""

_SLUG_UNSAFE = re.compile(r"[^a-z0-9._-]")


def model_slug(base_model: str) -> str:
    """The last path component of a model spec, safe in a model id."""
    name = base_model.rstrip("/").rsplit("/", 1)[-1].lower()
    return _SLUG_UNSAFE.sub("-", name)[:100] or "model"


def output_model_id(request: TrainingJobCreate) -> str:
    """`<base slug>-<suffix or method>-<16 random hex>`: 64 random bits, unrelated to the job's
    id, so no one can name another project's model from what they see of its job."""
    suffix = request.suffix or request.method
    return f"{model_slug(request.base_model)}-{suffix}-{secrets.token_hex(8)}"


def create_training_job(
    session: Session, settings: Settings, request: TrainingJobCreate, *, project_id: str
) -> TrainingJob:
    """Store a queued job after checking its base model and data; the caller enqueues it."""
    check_model_spec(
        session, settings, request.base_model, field="base_model", project_id=project_id
    )
    check_training_data(session, request, project_id=project_id)
    check_limits(request, settings)
    check_schedule(session, request, settings)
    check_open_training_jobs(
        session, project_id=project_id, limit=settings.max_open_training_jobs_per_project
    )
    job_id = new_training_job_id()
    job = TrainingJob(
        id=job_id,
        project_id=project_id,
        method=request.method,
        status=RunStatus.QUEUED,
        base_model=request.base_model,
        output_model=output_model_id(request),
        data=request.data.model_dump(),
        hyperparameters=request.resolved_hyperparameters(),
        lora=request.lora.model_dump() if request.lora is not None else None,
        distributed=request.distributed.model_dump() if request.distributed is not None else None,
    )
    session.add(job)
    session.flush()
    session.add(TrainingEvent(job_id=job.id, kind="status", message="queued"))
    return job


def check_training_data(session: Session, request: TrainingJobCreate, *, project_id: str) -> None:
    """Every dataset and file exists and suits the method (422 naming the entry)."""
    method, datasets, files = request.method, request.data.datasets, request.data.files
    if datasets and method not in TAKES_DATASETS:
        raise InvalidInputError(
            f"data.datasets: method {method} trains on cpt files only, not on datasets"
        )
    found = set(
        session.scalars(
            select(Dataset.id).where(Dataset.id.in_(datasets), Dataset.project_id == project_id)
        )
    )
    for position, dataset_id in enumerate(datasets):
        if dataset_id not in found:
            raise InvalidInputError(
                f"data.datasets[{position}]: dataset {dataset_id!r} not found"
                f"{batch_hint(dataset_id)}"
            )

    purposes: dict[str, str] = {
        file_id: purpose
        for file_id, purpose in session.execute(
            select(TrainingFile.id, TrainingFile.purpose).where(
                TrainingFile.id.in_(files), TrainingFile.project_id == project_id
            )
        )
    }
    takes = FILE_PURPOSES[method]
    for position, file_id in enumerate(files):
        purpose = purposes.get(file_id)
        if purpose is None:
            raise InvalidInputError(f"data.files[{position}]: file {file_id!r} not found")
        if purpose not in takes:
            raise InvalidInputError(
                f"data.files[{position}]: file {file_id} has purpose {purpose!r}; "
                f"method {method} takes {' and '.join(takes)} files"
            )

    if method == TrainingMethod.CPT_SFT:
        given = set(purposes.values())
        if "cpt" not in given:
            raise InvalidInputError("data: method cpt_sft needs at least one cpt file")
        if "sft" not in given and not datasets:
            raise InvalidInputError(
                "data: method cpt_sft needs at least one sft file or dataset to tune on"
            )


def check_limits(request: TrainingJobCreate, settings: Settings) -> None:
    max_length = request.hyperparameters.max_length
    if max_length > settings.max_training_length:
        raise InvalidInputError(
            f"hyperparameters.max_length: at most {settings.max_training_length} tokens, "
            f"got {max_length}"
        )


def check_schedule(session: Session, request: TrainingJobCreate, settings: Settings) -> None:
    """Refuse a schedule with too many steps, checkpoints further apart than the run, or every
    step at learning rate 0, when the steps can be counted now; otherwise the trainer counts them
    and applies the same rule before it trains."""
    hp = request.hyperparameters
    steps = known_optimizer_steps(session, request)
    if steps is None:
        return
    problem = schedule_problem(
        steps,
        epochs=hp.epochs,
        max_steps=hp.max_steps,
        warmup_ratio=hp.warmup_ratio,
        lr_scheduler=hp.lr_scheduler,
        checkpoint_every=hp.checkpoint_every,
        max_training_steps=settings.max_training_steps,
    )
    if problem is not None:
        raise InvalidInputError(problem)


def check_open_training_jobs(session: Session, *, project_id: str, limit: int) -> None:
    """A project has at most `limit` jobs queued or running; the project's lock, held until the
    commit, keeps two requests from both taking the last slot."""
    session.execute(
        select(func.pg_advisory_xact_lock(func.hashtext(f"open-training/{project_id}")))
    )
    open_jobs = session.scalar(
        select(func.count())
        .select_from(TrainingJob)
        .where(
            TrainingJob.project_id == project_id,
            TrainingJob.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]),
        )
    )
    if (open_jobs or 0) >= limit:
        raise TooManyRequestsError(
            f"this project has {open_jobs} training jobs queued or running, the limit is "
            f"{limit}: wait for one to finish, or cancel one"
        )


def known_optimizer_steps(session: Session, request: TrainingJobCreate) -> int | None:
    """The job's optimizer steps: `max_steps`, or for dpo (one example a pair) counted from its
    data on one process (more processes make fewer steps); None when only the trainer knows,
    as for packed sequences."""
    hp = request.hyperparameters
    if hp.max_steps is not None:
        return hp.max_steps
    if request.method != TrainingMethod.DPO:
        return None
    pairs = sum(
        int(counts.get("total", 0))
        for counts in session.scalars(
            select(Dataset.counts).where(Dataset.id.in_(request.data.datasets))
        )
    )
    pairs += sum(
        session.scalars(select(TrainingFile.lines).where(TrainingFile.id.in_(request.data.files)))
    )
    return optimizer_steps(
        batches_per_epoch=math.ceil(train_examples(pairs, hp.eval_fraction) / hp.batch_size),
        gradient_accumulation=hp.gradient_accumulation,
        epochs=hp.epochs,
        max_steps=None,
    )


def get_training_job(
    session: Session, job_id: str, *, project_id: str, for_update: bool = False
) -> TrainingJob:
    query = select(TrainingJob).where(
        TrainingJob.id == job_id, TrainingJob.project_id == project_id
    )
    job = session.scalars(query.with_for_update() if for_update else query).first()
    if job is None:
        raise NotFoundError(f"training job {job_id!r} not found")
    return job


def list_training_jobs(
    session: Session, *, project_id: str, limit: int, after: str | None
) -> tuple[list[TrainingJob], bool]:
    """Newest first; `after` is the id of the last job of the previous page."""
    cursor = None if after is None else get_training_job(session, after, project_id=project_id)
    query = select(TrainingJob).where(TrainingJob.project_id == project_id)
    return newest_first_page(session, TrainingJob, query, cursor=cursor, limit=limit)


def cancel_training_job(session: Session, job_id: str, *, project_id: str) -> TrainingJob:
    """A queued job is cancelled now; a running one is asked to stop at its next step."""
    job = get_training_job(session, job_id, project_id=project_id, for_update=True)
    if job.status == RunStatus.CANCELLED:
        return job
    if job.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        raise ConflictError(
            f"training job {job_id!r} is {job.status}: it can no longer be cancelled"
        )
    now = utcnow()
    if job.status == RunStatus.QUEUED:
        job.status = RunStatus.CANCELLED
        job.cancel_requested_at = job.cancel_requested_at or now
        job.finished_at = now
        session.add(
            TrainingEvent(job_id=job.id, kind="status", message="cancelled before it started")
        )
        cancel_after_evaluation(session, job)
    elif job.cancel_requested_at is None:
        job.cancel_requested_at = now
        session.add(
            TrainingEvent(
                job_id=job.id, kind="status", message="cancel requested: stopping at the next step"
            )
        )
    session.flush()
    return job


def withdraw_training_job(connection: Redis, job_id: str) -> None:
    """Take a cancelled job's RQ job off the train queue if it still waits there.

    Best effort: the row already says cancelled, and the trainer skips jobs that are not queued.
    """
    try:
        rq_job = Job.fetch(
            training_rq_job_id(job_id), connection=connection, serializer=JOB_SERIALIZER
        )
        if rq_job.get_status(refresh=False) in ("queued", "deferred", "scheduled"):
            rq_job.delete(remove_from_queue=True)
    except NoSuchJobError:
        pass
    except RedisError as error:
        log.warning("training job %s: could not remove it from the queue: %s", job_id, error)


def last_checkpoints(session: Session, job_ids: Sequence[str]) -> dict[str, TrainingCheckpoint]:
    """Each job's checkpoint with the highest step, in one query."""
    rows = session.scalars(
        select(TrainingCheckpoint)
        .where(TrainingCheckpoint.job_id.in_(job_ids))
        .ext(distinct_on(TrainingCheckpoint.job_id))
        .order_by(TrainingCheckpoint.job_id, TrainingCheckpoint.step.desc())
    )
    return {row.job_id: row for row in rows}


def last_events(
    session: Session, job_ids: Sequence[str], *condition: Any
) -> dict[str, TrainingEvent]:
    """Each job's newest event that meets `condition`, in one query."""
    rows = session.scalars(
        select(TrainingEvent)
        .where(TrainingEvent.job_id.in_(job_ids), *condition)
        .ext(distinct_on(TrainingEvent.job_id))
        .order_by(TrainingEvent.job_id, TrainingEvent.id.desc())
    )
    return {row.job_id: row for row in rows}


def progress_of(session: Session, job_ids: Sequence[str]) -> dict[str, TrainingProgress]:
    """Step, total steps and last loss of the jobs whose trainer has counted its steps."""
    counted = last_events(
        session,
        job_ids,
        TrainingEvent.kind == "status",
        TrainingEvent.metrics.has_key("total_steps"),  # type: ignore[attr-defined]
    )
    stepped = last_events(session, list(counted), TrainingEvent.kind == "metrics")
    progress = {}
    for job_id, event in counted.items():
        last = stepped.get(job_id)
        loss = None if last is None else (last.metrics or {}).get("loss")
        progress[job_id] = TrainingProgress(
            step=None if last is None else last.step,
            total_steps=(event.metrics or {})["total_steps"],
            loss=loss,
        )
    return progress


def training_jobs_out(session: Session, jobs: Sequence[TrainingJob]) -> list[TrainingJobOut]:
    job_ids = [job.id for job in jobs]
    checkpoints = last_checkpoints(session, job_ids)
    progress = progress_of(session, job_ids)
    return [
        job_out(job, checkpoints.get(job.id), progress.get(job.id)).model_copy(
            update={"evaluation": job_evaluation_out(session, job)}
        )
        for job in jobs
    ]


def training_job_out(session: Session, job: TrainingJob) -> TrainingJobOut:
    return training_jobs_out(session, [job])[0]


def job_out(
    job: TrainingJob,
    last_checkpoint: TrainingCheckpoint | None,
    progress: TrainingProgress | None = None,
) -> TrainingJobOut:
    return TrainingJobOut(
        id=job.id,
        method=job.method,
        status=job.status,
        base_model=job.base_model,
        output_model=job.output_model,
        data=job.data,
        hyperparameters=job.hyperparameters,
        lora=job.lora,
        distributed=job.distributed,
        result=job.result,
        error=shown(job.error),
        cancel_requested=job.cancel_requested_at is not None,
        last_checkpoint=checkpoint_out(last_checkpoint) if last_checkpoint is not None else None,
        progress=progress,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def checkpoint_out(checkpoint: TrainingCheckpoint) -> CheckpointOut:
    """A checkpoint as a tenant sees it: its folder's name within the job, not the host path."""
    return CheckpointOut(
        step=checkpoint.step,
        loss=checkpoint.loss,
        path=Path(checkpoint.path).name,
        created_at=checkpoint.created_at,
    )


def event_out(event: TrainingEvent) -> TrainingEventOut:
    """An event as a tenant sees it: no host path or internal URL in its message."""
    out = TrainingEventOut.model_validate(event, from_attributes=True)
    return out.model_copy(update={"message": shown(out.message)})


def list_training_events(
    session: Session,
    job_id: str,
    *,
    project_id: str,
    after: int | None,
    limit: int,
    kind: str | None = None,
) -> tuple[list[TrainingEvent], bool]:
    """Oldest first; `after` is the id of the last event already read."""
    get_training_job(session, job_id, project_id=project_id)
    query = select(TrainingEvent).where(TrainingEvent.job_id == job_id)
    if after is not None:
        query = query.where(TrainingEvent.id > after)
    if kind is not None:
        query = query.where(TrainingEvent.kind == kind)
    rows = list(session.scalars(query.order_by(TrainingEvent.id).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def list_checkpoints(session: Session, job_id: str, *, project_id: str) -> list[TrainingCheckpoint]:
    """By step, oldest first."""
    get_training_job(session, job_id, project_id=project_id)
    return list(
        session.scalars(
            select(TrainingCheckpoint)
            .where(TrainingCheckpoint.job_id == job_id)
            .order_by(TrainingCheckpoint.step)
        )
    )
