"""Freezing a selection of pairs into a named, versioned dataset, in one INSERT ... SELECT."""

from __future__ import annotations

from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.orm import Session

from app.kernel.errors import InvalidInputError, NotFoundError
from app.kernel.models import Batch, Dataset, DatasetPair, PreferencePair
from app.schemas.dataset import DatasetCreate, DatasetOut


def create_dataset(session: Session, request: DatasetCreate, *, project_id: str) -> Dataset:
    """Freeze the pairs the selection names now; pairs added to its batches later stay out."""
    found = set(
        session.scalars(
            select(Batch.id).where(Batch.id.in_(request.batch_ids), Batch.project_id == project_id)
        )
    )
    for position, batch_id in enumerate(request.batch_ids):
        if batch_id not in found:
            raise InvalidInputError(f"batch_ids[{position}]: batch {batch_id!r} not found")
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
        PreferencePair.batch_id.in_(request.batch_ids), PreferencePair.kind.in_(request.kinds)
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
            f"selection: no pairs match ({candidates} in the batches for kinds "
            f"{', '.join(request.kinds)}, none left after the filters)"
        )
    dataset.counts = {**counts, "total": total, "filtered_out": candidates - total}
    return dataset


def get_dataset(session: Session, dataset_id: str, *, project_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.project_id != project_id:
        raise NotFoundError(f"dataset {dataset_id!r} not found")
    return dataset


def list_datasets(session: Session, *, project_id: str, name: str | None) -> list[Dataset]:
    query = (
        select(Dataset).where(Dataset.project_id == project_id).order_by(Dataset.created_at.desc())
    )
    if name is not None:
        query = query.where(Dataset.name == name)
    return list(session.scalars(query))


def dataset_out(dataset: Dataset) -> DatasetOut:
    return DatasetOut.model_validate(dataset, from_attributes=True)
