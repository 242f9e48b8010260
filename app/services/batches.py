"""Creating, reading and cancelling batches; the caller owns the session and its transaction."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from redis import Redis
from sqlalchemy import Row, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from app.kernel.batch_options import BatchSettings, EngineName
from app.kernel.chunk_stats import ChunkStats, TokenUsage
from app.kernel.config import Settings
from app.kernel.db.base import utcnow
from app.kernel.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TooManyRequestsError,
)
from app.kernel.models import Batch, Chunk, PreferencePair, Sample, Verdict
from app.kernel.models.statuses import (
    IDLE_BATCH_STATUSES,
    OPEN_RUN_STATUSES,
    TERMINAL_BATCH_STATUSES,
    BatchKind,
    BatchStatus,
    ChunkStage,
    RunStatus,
    SignalKind,
)
from app.kernel.progress import read_progress, summed
from app.kernel.queue import ChunkRoute, ModelRef, has_live_worker
from app.schemas.batch import BatchCreate, BatchOut, BatchProgress, PromptIn, RequestCounts
from app.services.calibration import batch_calibration
from app.services.given_answers import check_given_answers, stored_answers
from app.services.models import check_model_spec
from app.services.pagination import newest_first
from app.services.rollouts import check_scp_method, rollout_report
from app.services.tenant_text import shown

PROMPT_COPY_COLUMNS = (
    "batch_id",
    "index",
    "custom_id",
    "question",
    "reference_answer",
    "metadata",
    "chunk_id",
    "answers",
)


def check_prompts(prompts: list[PromptIn], *, max_prompts: int, max_question_chars: int) -> None:
    """Refuse what no worker could do well: too many prompts, duplicate ids, missing references."""
    if len(prompts) > max_prompts:
        raise InvalidInputError(f"prompts: at most {max_prompts} per batch, got {len(prompts)}")
    seen: dict[str, tuple[int, PromptIn]] = {}
    for position, prompt in enumerate(prompts):
        if len(prompt.question) > max_question_chars:
            raise InvalidInputError(
                f"{prompt.where(position, 'question')}: at most {max_question_chars} characters, "
                f"got {len(prompt.question)}"
            )
        if prompt.id is not None:
            if prompt.id in seen:
                first_position, first = seen[prompt.id]
                raise InvalidInputError(
                    f"{prompt.where(position, 'id')}: duplicate id {prompt.id!r} "
                    f"(also {first.place(first_position)})"
                )
            seen[prompt.id] = (position, prompt)
        if prompt.reference_answer is None or not prompt.reference_answer.strip():
            # The judge compares against the reference: without one there is no verdict.
            raise InvalidInputError(
                f"{prompt.where(position, 'reference_answer')}: required, the judge compares "
                "against it"
            )


def create_batch(
    session: Session,
    request: BatchCreate,
    *,
    project_id: str,
    limits: Settings,
    kind: BatchKind = BatchKind.BATCH,
) -> tuple[Batch, list[ChunkRoute]]:
    """Store a batch, its chunks and its prompts (bulk COPY); returns it and the work to queue.
    An evaluation's hidden batch (kind evaluation) does not count against the open batches."""
    check_given_answers(request.prompts, max_answers=limits.max_samples_per_prompt)
    check_scp_method(request)  # before the copy below marks `policy` as set
    if "max_tokens" not in request.policy.model_fields_set:
        # The default (1024) gives way to a smaller MAX_TOKENS; only a value asked for is refused.
        policy = request.policy.model_copy(
            update={"max_tokens": min(request.policy.max_tokens, limits.max_tokens)}
        )
        request = request.model_copy(update={"policy": policy})
    check_prompts(
        request.prompts,
        max_prompts=limits.max_prompts_per_batch,
        max_question_chars=limits.max_question_chars,
    )
    check_generation_limits(request, limits)
    check_models_allowed(session, limits, request, project_id=project_id)
    chunk_size = batch_chunk_size(request, limits)
    n_chunks = -(-len(request.prompts) // chunk_size)
    limit = limits.max_open_batches_per_project
    counted = kind == BatchKind.BATCH
    # Refused before the work; checked again, final, once the batch is stored.
    if counted:
        check_open_batches(session, project_id=project_id, limit=limit)
    check_queued_chunks(session, project_id=project_id, adding=n_chunks, limits=limits)
    batch = Batch(
        project_id=project_id,
        kind=kind,
        status=BatchStatus.VALIDATING,
        policy=request.policy.model_dump(),
        judge=request.judge.model_dump(),
        pairing=request.pairing.model_dump(),
        batch_metadata=request.metadata,
        total_prompts=len(request.prompts),
        chunk_size=chunk_size,
    )
    session.add(batch)
    session.flush()
    chunks = [
        request.prompts[start : start + chunk_size]
        for start in range(0, len(request.prompts), chunk_size)
    ]
    # A chunk of given answers only has nothing to sample: it starts at its judge.
    stages = [
        ChunkStage.JUDGE if all(p.answers is not None for p in chunk) else ChunkStage.SAMPLE
        for chunk in chunks
    ]
    chunk_ids = list(
        session.scalars(
            insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True),
            [
                {"batch_id": batch.id, "index": index, "n_prompts": len(chunk), "stage": stage}
                for index, (chunk, stage) in enumerate(zip(chunks, stages, strict=True))
            ],
        )
    )
    copy_prompts(session, batch.id, request.prompts, chunk_ids, chunk_size)
    batch.status = BatchStatus.QUEUED
    if counted:
        check_open_batches(session, project_id=project_id, limit=limit, new_batch_id=batch.id)
    else:
        # The lock check_open_batches takes, so the chunk count below is final all the same.
        lock_open_batches(session, project_id)
    check_queued_chunks(
        session, project_id=project_id, adding=n_chunks, limits=limits, new_batch_id=batch.id
    )
    model = {
        ChunkStage.SAMPLE: ModelRef.of(request.policy),
        ChunkStage.JUDGE: ModelRef.of(request.judge),
    }
    return batch, [
        ChunkRoute(chunk_id, stage, model[stage])
        for chunk_id, stage in zip(chunk_ids, stages, strict=True)
    ]


SPREAD_OVER_CHUNKS = 8
"""A batch that does not set chunk_size is cut into about this many chunks."""
MIN_CHUNK_PROMPTS = 4
"""Fewest prompts of such a chunk: one engine call per chunk, too small a call wastes it."""


def default_chunk_size(prompts: int, max_size: int, min_size: int = MIN_CHUNK_PROMPTS) -> int:
    """Prompts per chunk of a batch that sets no chunk_size: ceil(prompts / 8), between
    min_size (4, or MIN_CHUNK_SIZE if larger) and CHUNK_SIZE. Small batches so spread over
    several chunks (and workers) and show progress chunk by chunk; large ones take CHUNK_SIZE,
    whose engine calls keep a GPU busy."""
    return max(1, min(max_size, max(min_size, -(-prompts // SPREAD_OVER_CHUNKS))))


def batch_chunk_size(request: BatchCreate, limits: Settings) -> int:
    """The batch's chunk_size as asked (422 below MIN_CHUNK_SIZE), or its default."""
    if request.chunk_size is None:
        min_size = max(MIN_CHUNK_PROMPTS, limits.min_chunk_size)
        return default_chunk_size(len(request.prompts), limits.chunk_size, min_size)
    if request.chunk_size < limits.min_chunk_size:
        raise InvalidInputError(
            f"chunk_size: at least {limits.min_chunk_size} prompts per chunk (MIN_CHUNK_SIZE), "
            f"got {request.chunk_size}"
        )
    return request.chunk_size


def copy_prompts(
    session: Session, batch_id: str, prompts: list[PromptIn], chunk_ids: list[int], chunk_size: int
) -> None:
    """Bulk-load prompts with Postgres COPY: 100,000 rows in about a second."""
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    columns = ", ".join(f'"{name}"' for name in PROMPT_COPY_COLUMNS)
    with cursor.copy(f"COPY prompts ({columns}) FROM STDIN") as copy:
        for index, prompt in enumerate(prompts):
            copy.write_row(
                (
                    batch_id,
                    index,
                    prompt.id,
                    prompt.question,
                    prompt.reference_answer,
                    None if prompt.metadata is None else json.dumps(prompt.metadata),
                    chunk_ids[index // chunk_size],
                    None if prompt.answers is None else json.dumps(stored_answers(prompt)),
                )
            )


def check_generation_limits(request: BatchCreate, limits: Settings) -> None:
    if request.policy.samples_per_prompt > limits.max_samples_per_prompt:
        raise InvalidInputError(
            f"policy.samples_per_prompt: at most {limits.max_samples_per_prompt}, "
            f"got {request.policy.samples_per_prompt}"
        )
    for field, max_tokens in (
        ("policy", request.policy.max_tokens),
        ("judge", request.judge.max_tokens),
    ):
        if max_tokens > limits.max_tokens:
            raise InvalidInputError(
                f"{field}.max_tokens: at most {limits.max_tokens}, got {max_tokens}"
            )


def check_open_batches(
    session: Session, *, project_id: str, limit: int, new_batch_id: str | None = None
) -> None:
    """One project cannot flood the queue: a bounded number of batches in flight at once.

    With the id of the batch this transaction adds, the check is final: it takes the project's
    lock, so two requests cannot both take the last slot. Taken last, after the prompts are
    stored, the lock is held only until the commit that follows: other creations wait little."""
    query = (
        select(func.count())
        .select_from(Batch)
        .where(
            Batch.project_id == project_id,
            Batch.kind == BatchKind.BATCH,
            Batch.status.not_in([str(s) for s in TERMINAL_BATCH_STATUSES]),
        )
    )
    if new_batch_id is not None:
        lock_open_batches(session, project_id)
        query = query.where(Batch.id != new_batch_id)
    open_batches = session.scalar(query)
    if (open_batches or 0) >= limit:
        raise TooManyRequestsError(
            f"this project has {open_batches} batches queued or in progress, the limit is "
            f"{limit}: wait for some to finish, or cancel some"
        )


def lock_open_batches(session: Session, project_id: str) -> None:
    """Hold the project's lock on new work until this transaction ends."""
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"open-batches/{project_id}"))))


QUEUED_CHUNKS_RETRY_AFTER_S = 60
"""What a refused batch is told to wait: chunks finish in about that time."""


def check_queued_chunks(
    session: Session,
    *,
    project_id: str,
    adding: int,
    limits: Settings,
    new_batch_id: str | None = None,
) -> None:
    """One project cannot fill Redis: a bounded number of chunks queued or running at once,
    over all its batches (a 422 for a batch that alone needs more, a 429 while others hold
    them). With the batch this transaction adds, final: it runs under the project's lock that
    check_open_batches took, and counts the others' chunks."""
    limit = limits.max_queued_chunks_per_project
    if adding > limit:
        raise InvalidInputError(
            f"chunk_size: this batch makes {adding} chunks, more than the {limit} a project may "
            "have queued (MAX_QUEUED_CHUNKS_PER_PROJECT): raise chunk_size or send fewer prompts"
        )
    query = (
        select(func.count())
        .select_from(Chunk)
        .join(Batch, Batch.id == Chunk.batch_id)
        .where(
            Batch.project_id == project_id,
            Batch.status.not_in([str(s) for s in IDLE_BATCH_STATUSES]),
            Chunk.status.in_([str(s) for s in OPEN_RUN_STATUSES]),
        )
    )
    if new_batch_id is not None:
        query = query.where(Batch.id != new_batch_id)
    queued = session.scalar(query) or 0
    if queued + adding > limit:
        raise TooManyRequestsError(
            f"this project has {queued} chunks queued or running and this batch adds {adding}; "
            f"the limit is {limit} (MAX_QUEUED_CHUNKS_PER_PROJECT): wait for some to finish, "
            "or cancel some",
            retry_after_s=QUEUED_CHUNKS_RETRY_AFTER_S,
        )


def check_models_allowed(
    session: Session, settings: Settings, request: BatchCreate, *, project_id: str
) -> None:
    """The policy and the judge are models this project may use; the rule judge is named only
    `rule` (its model name makes its queue's name: no other may make a queue)."""
    for field, options in (("policy", request.policy), ("judge", request.judge)):
        if options.engine == EngineName.RULE:
            if options.model != EngineName.RULE.value:
                raise InvalidInputError(
                    f"{field}.model: the rule judge loads no model: leave it out or name it "
                    f"'rule', got {options.model!r}"
                )
            continue
        check_model_spec(
            session, settings, options.model, field=f"{field}.model", project_id=project_id
        )


def get_batch(session: Session, batch_id: str, *, project_id: str) -> Batch:
    """A batch of this project; an evaluation's hidden batch is not found (its evaluation is)."""
    batch = session.get(Batch, batch_id)
    if batch is None or batch.project_id != project_id or batch.kind != BatchKind.BATCH:
        raise NotFoundError(f"batch {batch_id!r} not found")
    return batch


def cancel_batch(
    session: Session,
    batch_id: str,
    *,
    project_id: str,
    kind: BatchKind = BatchKind.BATCH,
    shown_id: str | None = None,
) -> tuple[Batch, list[ChunkRoute]]:
    """Chunks not yet sampled never start; started ones (running, or sampled and waiting for
    their judge) finish and keep their results. Returns the batch and the cancelled chunks,
    whose queued jobs the caller deletes from Redis once this commits.

    Locks as workers do (app.kernel's lock order): the batch, then its chunks by id."""
    batch = session.scalars(select(Batch).where(Batch.id == batch_id).with_for_update()).first()
    if batch is None or batch.project_id != project_id or batch.kind != kind:
        raise NotFoundError(f"{kind} {shown_id or batch_id!r} not found")
    if batch.status in TERMINAL_BATCH_STATUSES:
        raise ConflictError(
            f"{kind} {shown_id or batch_id!r} is {batch.status}: it can no longer be cancelled"
        )
    if batch.status == BatchStatus.CANCELLING:
        return batch, []
    now = utcnow()
    cancelled = session.execute(
        select(Chunk.id, Chunk.stage)
        .where(
            Chunk.batch_id == batch_id,
            Chunk.status == RunStatus.QUEUED,
            # A chunk of given answers waits at its judge without ever having started.
            or_(Chunk.stage == ChunkStage.SAMPLE, Chunk.started_at.is_(None)),
        )
        .order_by(Chunk.id)
        .with_for_update()
    ).all()
    session.execute(
        update(Chunk)
        .where(Chunk.id.in_([chunk_id for chunk_id, _ in cancelled]))
        .values(status=RunStatus.CANCELLED, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    running = session.scalar(
        select(func.count())
        .select_from(Chunk)
        .where(Chunk.batch_id == batch_id, Chunk.status.in_(list(OPEN_RUN_STATUSES)))
    )
    batch.status = BatchStatus.CANCELLING
    batch.cancelling_at = now
    if not running:
        batch.status = BatchStatus.CANCELLED
        batch.cancelled_at = now
    options = batch.options
    model = {
        ChunkStage.SAMPLE: ModelRef.of(options.policy),
        ChunkStage.JUDGE: ModelRef.of(options.judge),
    }
    return batch, [
        ChunkRoute(chunk_id, ChunkStage(stage), model[ChunkStage(stage)])
        for chunk_id, stage in cancelled
    ]


AnyRow = Row[*tuple[Any, ...]]
BatchFields = Batch | AnyRow
"""A batch's own columns, as an ORM object or as a row of BATCH_COLUMNS."""


def batch_notes(options: BatchSettings, unserved: list[str], *, truncated: int = 0) -> list[str]:
    """Plain reasons this batch waits, or makes fewer pairs than it might."""
    notes = list(unserved)
    if truncated:
        notes.append(
            f"{truncated} answer(s) were cut at policy.max_tokens ({options.policy.max_tokens}) "
            "and stored as truncated: not judged, no pairs; raise policy.max_tokens"
        )
    if options.judged_by_rule and options.pairing.scp and not options.uses_rollouts:
        notes.append(
            "judge 'rule' checks final answers only: this batch makes FAP pairs, no SCP pairs"
        )
    if not options.pairing.fap:
        notes.append("pairing.fap is off: no FAP pairs")
    if not options.pairing.scp:
        notes.append("pairing.scp is off: no SCP pairs")
    if options.policy.samples_per_prompt == 1 and options.pairing.fap:
        notes.append(
            "samples_per_prompt is 1: a question never has both a correct and a wrong answer"
        )
    return notes


LiveWorkerCheck = Callable[[ChunkStage, ModelRef], bool]


def live_worker_check(redis: Redis | None, queue_prefix: str) -> LiveWorkerCheck | None:
    """Whether a live worker serves a stage's model; asked of Redis once per model and request."""
    if redis is None:
        return None

    @cache
    def check(stage: ChunkStage, model: ModelRef) -> bool:
        return has_live_worker(redis, queue_prefix, stage, model)

    return check


def unserved_models(
    status: str,
    options: BatchSettings,
    chunk_counts: dict[str, int],
    live_worker: LiveWorkerCheck | None,
    open_stages: list[str] | None = None,
) -> list[str]:
    """Notes for models this unfinished batch needs that no live worker serves."""
    if live_worker is None or status in IDLE_BATCH_STATUSES:  # waiting: no model to serve yet
        return []
    if not (chunk_counts[RunStatus.QUEUED] or chunk_counts[RunStatus.RUNNING]):
        return []
    needed = []
    # Chunks of given answers start at the judge: a batch of only those needs no policy.
    if open_stages is None or ChunkStage.SAMPLE in open_stages:
        needed.append((ChunkStage.SAMPLE, "policy", ModelRef.of(options.policy)))
    # A rule judge runs in the sampling worker, except for given answers: any worker takes those.
    if not options.judged_by_rule or ChunkStage.JUDGE in (open_stages or []):
        needed.append((ChunkStage.JUDGE, "judge", ModelRef.of(options.judge)))
    return [
        f"no worker serves {role} {model}: start `findap worker --{role} {model}` "
        "(in the folder of `findap up` it joins it; elsewhere set DATABASE_URL and REDIS_URL)"
        for stage, role, model in needed
        if not live_worker(stage, model)
    ]


def json_rows(*columns: Any, where: Any, group_by: tuple[Any, ...] = ()) -> Any:
    """A scalar subquery: the rows of `columns` (grouped) as one JSON array of arrays."""
    grouped = select(*columns).where(where).correlate(Batch)
    if group_by:
        grouped = grouped.group_by(*group_by)
    inner = grouped.subquery()
    return (
        select(func.json_agg(func.json_build_array(*inner.c))).select_from(inner).scalar_subquery()
    )


# Counted per batch row (correlated on batches.id), so one SELECT summarises one batch or a page.
COUNT_COLUMNS = (
    json_rows(
        Chunk.status,
        func.count(),
        func.sum(Chunk.n_prompts),
        where=Chunk.batch_id == Batch.id,
        group_by=(Chunk.status,),
    ).label("chunks"),
    select(func.count())
    .select_from(Sample)
    .where(Sample.batch_id == Batch.id)
    .correlate(Batch)
    .scalar_subquery()
    .label("samples"),
    json_rows(
        Verdict.kind,
        Verdict.outcome,
        Verdict.verdict,
        func.count(),
        where=Verdict.batch_id == Batch.id,
        group_by=(Verdict.kind, Verdict.outcome, Verdict.verdict),
    ).label("verdicts"),
    json_rows(
        PreferencePair.kind,
        func.count(),
        where=and_(PreferencePair.batch_id == Batch.id, PreferencePair.withdrawn_at.is_(None)),
        group_by=(PreferencePair.kind,),
    ).label("pairs"),
    select(func.json_agg(Chunk.stats))
    .where(Chunk.batch_id == Batch.id, Chunk.stats.is_not(None))
    .correlate(Batch)
    .scalar_subquery()
    .label("stats"),
    select(func.json_agg(func.distinct(Chunk.stage)))
    .where(Chunk.batch_id == Batch.id, Chunk.status.in_(list(OPEN_RUN_STATUSES)))
    .correlate(Batch)
    .scalar_subquery()
    .label("open_stages"),
)
BATCH_COLUMNS = (
    Batch.id,
    Batch.status,
    Batch.policy,
    Batch.judge,
    Batch.pairing,
    Batch.batch_metadata,
    Batch.total_prompts,
    Batch.error,
    Batch.created_at,
    Batch.in_progress_at,
    Batch.finalizing_at,
    Batch.completed_at,
    Batch.failed_at,
    Batch.cancelling_at,
    Batch.cancelled_at,
)
# Built once: a poll only binds its parameters (no statement building, no cache-key walk).
COUNTS_OF_BATCH = select(*COUNT_COLUMNS).where(Batch.id == bindparam("batch_id"))
SUMMARY_OF_BATCH = select(*BATCH_COLUMNS, *COUNT_COLUMNS).where(
    Batch.id == bindparam("batch_id"),
    Batch.project_id == bindparam("project_id"),
    Batch.kind == BatchKind.BATCH,
)


def get_summary(
    session: Session,
    batch_id: str,
    *,
    project_id: str,
    redis: Redis | None = None,
    queue_prefix: str = "",
) -> BatchOut:
    """One batch's summary in one round trip: its columns and every count."""
    row = session.execute(
        SUMMARY_OF_BATCH, {"batch_id": batch_id, "project_id": project_id}
    ).first()
    if row is None:
        raise NotFoundError(f"batch {batch_id!r} not found")
    summary = batch_out(row, row, live_worker_check(redis, queue_prefix))
    summary.calibration = batch_calibration(
        session, batch_id, analysed=bool(row.pairing.get("scp"))
    )
    options = BatchSettings.of_row(row.policy, row.judge, row.pairing)
    summary.rollouts = rollout_report(session, batch_id, options)
    return with_progress(summary, redis, queue_prefix)


def with_progress(summary: BatchOut, redis: Redis | None, queue_prefix: str) -> BatchOut:
    """The summary with its running chunks' progress from Redis (one round trip), while it
    has running chunks."""
    if redis is None or not summary.chunk_counts.get(RunStatus.RUNNING):
        return summary
    figures = summed(read_progress(redis, queue_prefix, summary.id))
    if figures is None:
        return summary
    summary.progress = BatchProgress(**figures)
    return summary


def list_summaries(
    session: Session,
    *,
    project_id: str,
    limit: int,
    after: str | None,
    redis: Redis | None = None,
    queue_prefix: str = "",
) -> tuple[list[BatchOut], bool]:
    """A page of summaries, newest first, in one SELECT; `after`: the previous page's last id."""
    cursor = None if after is None else get_batch(session, after, project_id=project_id)
    query = select(*BATCH_COLUMNS, *COUNT_COLUMNS).where(
        Batch.project_id == project_id, Batch.kind == BatchKind.BATCH
    )
    rows = list(session.execute(newest_first(Batch, query, cursor=cursor, limit=limit + 1)))
    check = live_worker_check(redis, queue_prefix)
    return [batch_out(row, row, check) for row in rows[:limit]], len(rows) > limit


def summarize_batch(
    session: Session, batch: Batch, *, redis: Redis | None = None, queue_prefix: str = ""
) -> BatchOut:
    """The batch with its progress, verdict distribution, pair counts and token usage."""
    counts = session.execute(COUNTS_OF_BATCH, {"batch_id": batch.id}).one()
    summary = batch_out(batch, counts, live_worker_check(redis, queue_prefix))
    return with_progress(summary, redis, queue_prefix)


def batch_out(batch: BatchFields, counts: AnyRow, live_worker: LiveWorkerCheck | None) -> BatchOut:
    """The API shape of a batch from its columns and its COUNT_COLUMNS."""
    chunk_rows = [(status, count, n_prompts) for status, count, n_prompts in counts.chunks or []]
    chunk_counts = {status.value: 0 for status in RunStatus}
    prompts_by_status: dict[str, int] = {}
    for status, count, n_prompts in chunk_rows:
        chunk_counts[status] = count
        prompts_by_status[status] = int(n_prompts or 0)
    chunk_counts["total"] = sum(count for _, count, _ in chunk_rows)

    verdict_counts: dict[str, dict[str, int]] = {
        SignalKind.FAP: {"correct": 0, "wrong": 0, "unparseable": 0, "truncated": 0},
        SignalKind.SCP: {
            "parsed": 0,
            "no_step_error": 0,
            "unparseable": 0,
            "failed_validation": 0,
        },
    }
    for kind, outcome, verdict, count in counts.verdicts or []:
        key = verdict if kind == SignalKind.FAP and outcome == "parsed" and verdict else outcome
        # "rollout" verdicts (first wrong steps from rollouts) appear only where there are some.
        counted = verdict_counts.setdefault(kind, {})
        counted[key] = counted.get(key, 0) + count

    pair_counts = {"fap": 0, "scp": 0}
    for kind, count in counts.pairs or []:
        pair_counts[kind] = count
    pair_counts["total"] = pair_counts["fap"] + pair_counts["scp"]

    usage = TokenUsage()
    pairs_dropped: dict[str, int] = {}
    for row in counts.stats or []:
        stats = ChunkStats.model_validate(row)
        usage += stats.usage
        add_counts(pairs_dropped, stats.pairs_dropped or {})
    options = BatchSettings.of_row(batch.policy, batch.judge, batch.pairing)

    return BatchOut(
        id=batch.id,
        status=batch.status,
        policy=batch.policy,
        judge=batch.judge,
        pairing=batch.pairing,
        metadata=batch.batch_metadata,
        request_counts=RequestCounts(
            total=batch.total_prompts,
            completed=prompts_by_status.get(RunStatus.SUCCEEDED, 0),
            failed=prompts_by_status.get(RunStatus.FAILED, 0),
        ),
        chunk_counts=chunk_counts,
        sample_count=counts.samples or 0,
        verdict_counts=verdict_counts,
        pair_counts=pair_counts,
        pairs_dropped=pairs_dropped,
        usage={**usage.model_dump(), "total_tokens": usage.total},
        notes=batch_notes(
            options,
            unserved_models(
                batch.status, options, chunk_counts, live_worker, counts.open_stages or []
            ),
            truncated=verdict_counts[SignalKind.FAP]["truncated"],
        ),
        error=shown(batch.error),
        created_at=batch.created_at,
        in_progress_at=batch.in_progress_at,
        finalizing_at=batch.finalizing_at,
        completed_at=batch.completed_at,
        failed_at=batch.failed_at,
        cancelling_at=batch.cancelling_at,
        cancelled_at=batch.cancelled_at,
    )


def add_counts(total: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + int(value)
