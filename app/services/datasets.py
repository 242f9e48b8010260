"""Freezing a selection of pairs into a named, versioned dataset, in one INSERT ... SELECT."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import ColumnElement, and_, func, literal, select
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.orm import Session

from app.kernel.errors import ConflictError, InvalidInputError, NotFoundError
from app.kernel.models import Batch, Dataset, DatasetPair, PreferencePair
from app.kernel.models.statuses import TERMINAL_BATCH_STATUSES
from app.schemas.dataset import DatasetCreate, DatasetOut
from app.services.decontamination import check_eval_files, decontaminate_dataset
from app.services.pagination import newest_first_page


def create_dataset(
    session: Session, request: DatasetCreate, *, project_id: str, files_dir: Path
) -> Dataset:
    """Freeze the pairs the selection names now; pairs added to its batches later stay out.
    With `decontaminate_against`, check them against those eval files (and drop the flagged
    ones if `decontaminate`)."""
    statuses: dict[str, str] = {
        batch_id: status
        for batch_id, status in session.execute(
            select(Batch.id, Batch.status).where(
                Batch.id.in_(request.batch_ids), Batch.project_id == project_id
            )
        )
    }
    for position, batch_id in enumerate(request.batch_ids):
        if batch_id not in statuses:
            raise InvalidInputError(f"batch_ids[{position}]: batch {batch_id!r} not found")
        if statuses[batch_id] not in TERMINAL_BATCH_STATUSES:
            raise ConflictError(
                f"batch_ids[{position}]: batch {batch_id} is still {statuses[batch_id]}: its "
                "pairs are not all made yet; freeze it once it has completed, or cancel it to "
                "freeze the pairs it made"
            )
    check_eval_files(
        session,
        request.decontaminate_against,
        project_id=project_id,
        field_name="decontaminate_against",
    )
    # One writer per name at a time: versions count up without gaps or clashes.
    session.execute(
        select(func.pg_advisory_xact_lock(func.hashtext(f"{project_id}/{request.name}")))
    )
    version = (
        session.scalar(
            select(func.max(Dataset.version)).where(
                Dataset.project_id == project_id, Dataset.name == request.name
            )
        )
        or 0
    ) + 1
    dataset = Dataset(
        project_id=project_id,
        name=request.name,
        version=version,
        selection=request.model_dump(),
        counts={},
    )
    session.add(dataset)
    session.flush()

    selected = select(PreferencePair.id, PreferencePair.content_hash).where(
        *live_pairs(request), PreferencePair.kind.in_(request.kinds)
    )
    candidates = session.scalar(select(func.count()).select_from(selected.subquery())) or 0
    if request.filters.max_tokens is not None:
        selected = selected.where(PreferencePair.token_count <= request.filters.max_tokens)
    if request.filters.drop_duplicates:
        selected = selected.ext(distinct_on(PreferencePair.content_hash)).order_by(
            PreferencePair.content_hash, PreferencePair.id
        )
    chosen = selected.subquery()
    session.execute(
        insert(DatasetPair).from_select(
            ["dataset_id", "pair_id"], select(literal(dataset.id), chosen.c.id)
        )
    )
    dropped = 0
    if request.decontaminate_against:
        dataset.contamination = decontaminate_dataset(
            session,
            dataset,
            request.decontaminate_against,
            files_dir=files_dir,
            drop=request.decontaminate,
        )
        dropped = dataset.contamination["pairs_dropped"]
    counts = {"fap": 0, "scp": 0}
    for kind, count in session.execute(
        select(PreferencePair.kind, func.count())
        .join(DatasetPair, DatasetPair.pair_id == PreferencePair.id)
        .where(DatasetPair.dataset_id == dataset.id)
        .group_by(PreferencePair.kind)
    ):
        counts[kind] = count
    total = counts["fap"] + counts["scp"]
    if not total:
        raise InvalidInputError(
            f"decontaminate: all {dropped} pairs the selection leaves overlap the eval files; "
            "nothing would be left"
            if dropped
            else why_empty(session, request, candidates)
        )
    filtered_out = candidates - total - dropped
    dataset.counts = {**counts, "total": total, "filtered_out": filtered_out}
    return dataset


def live_pairs(request: DatasetCreate) -> list[ColumnElement[bool]]:
    """The selected batches' pairs no review withdrew (only reviewed ones with reviewed_only)."""
    conditions: list[ColumnElement[bool]] = [
        PreferencePair.batch_id.in_(request.batch_ids),
        PreferencePair.withdrawn_at.is_(None),
    ]
    if request.reviewed_only:
        conditions.append(PreferencePair.provenance["reviewed"].as_boolean().is_(True))
    return conditions


def why_empty(session: Session, request: DatasetCreate, candidates: int) -> str:
    """Which part of the selection left no pair: the batches, reviewed_only, the kinds, or
    max_tokens."""
    in_batches = and_(*live_pairs(request))
    if candidates:
        shortest = session.scalar(
            select(func.min(PreferencePair.token_count)).where(
                in_batches, PreferencePair.kind.in_(request.kinds)
            )
        )
        return (
            f"filters.max_tokens: all {candidates} pairs are longer than "
            f"{request.filters.max_tokens} tokens (the shortest has {shortest})"
        )
    any_kind = session.scalar(select(func.count()).where(in_batches)) or 0
    if not any_kind and request.reviewed_only:
        return "reviewed_only: the batches have no reviewed pairs (review answers first)"
    if any_kind:
        return (
            f"kinds: the batches have {any_kind} pairs, none of kind {' or '.join(request.kinds)}"
        )
    return "batch_ids: the batches made no pairs (`findap status BATCH` says why in its notes)"


def batch_hint(some_id: str) -> str:
    """For a batch id given where a dataset id belongs: how to make a dataset of it."""
    if not some_id.startswith("batch_"):
        return ""
    return (
        f": {some_id} is a batch; freeze its pairs into a dataset first "
        f"(`findap datasets create --name NAME --batch {some_id}`, or POST /v1/datasets)"
    )


def get_dataset(session: Session, dataset_id: str, *, project_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.project_id != project_id:
        raise NotFoundError(f"dataset {dataset_id!r} not found{batch_hint(dataset_id)}")
    return dataset


def list_datasets(
    session: Session, *, project_id: str, name: str | None, limit: int, after: str | None
) -> tuple[list[Dataset], bool]:
    """A page of the project's datasets, newest first; `after`: the previous page's last id."""
    cursor = None if after is None else get_dataset(session, after, project_id=project_id)
    query = select(Dataset).where(Dataset.project_id == project_id)
    if name is not None:
        query = query.where(Dataset.name == name)
    return newest_first_page(session, Dataset, query, cursor=cursor, limit=limit)


def dataset_out(dataset: Dataset) -> DatasetOut:
    return DatasetOut.model_validate(dataset, from_attributes=True)
