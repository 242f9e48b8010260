"""Models the service knows: built-in (registered), configured base models, and trained ones."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kernel.catalog import ModelSource, configured_models, find_model
from app.kernel.config import Settings
from app.kernel.errors import InvalidInputError, NotFoundError
from app.kernel.models import TrainedModel, TrainingJob
from app.kernel.registered_models import REGISTERED_MODELS, RegisteredModel, not_allowed_message
from app.schemas.training_job import ModelOut
from app.services.pagination import newest_first_page


def check_model_spec(
    session: Session, settings: Settings, spec: str, *, field: str, project_id: str
) -> None:
    """Refuse (422, naming `field`) a model outside this project's allow-list: registered
    models, configured base models and the project's own trained models. Every other name gets
    the same answer, so it tells nothing of the host's folders or of other projects' models."""
    if find_model(session, settings, spec, project_id=project_id) is not None:
        return
    pending = session.scalars(
        select(TrainingJob).where(
            TrainingJob.output_model == spec, TrainingJob.project_id == project_id
        )
    ).one_or_none()
    if pending is not None:
        raise InvalidInputError(
            f"{field}: model {spec!r} is not ready: training job {pending.id} is {pending.status}"
        )
    raise InvalidInputError(f"{field}: {not_allowed_message(spec)}")


def list_models(
    session: Session, settings: Settings, *, project_id: str, limit: int, after: str | None
) -> tuple[list[ModelOut], bool]:
    """A page of one list: registered models, then configured base models, then the project's
    trained ones (newest first); `after`: the previous page's last id."""
    catalog = [
        *(registered_out(model) for model in REGISTERED_MODELS.values()),
        *(configured_out(name) for name in configured_models(settings)),
    ]
    catalog_ids = [model.id for model in catalog]
    cursor = None
    if after is None:
        start = 0
    elif after in catalog_ids:
        start = catalog_ids.index(after) + 1
    else:
        start = len(catalog)
        cursor = trained_model(session, after, project_id=project_id)
    page = catalog[start : start + limit]
    query = select(TrainedModel).where(TrainedModel.project_id == project_id)
    # With the page full of catalog entries this asks only whether a trained model follows.
    trained, more_trained = newest_first_page(
        session, TrainedModel, query, cursor=cursor, limit=limit - len(page)
    )
    has_more = start + len(page) < len(catalog) or more_trained
    return [*page, *(trained_out(model) for model in trained)], has_more


def trained_model(session: Session, model_id: str, *, project_id: str) -> TrainedModel:
    """A trained model of this project by id; another project's is not found."""
    model = session.get(TrainedModel, model_id)
    if model is None or model.project_id != project_id:
        raise NotFoundError(f"model {model_id!r} not found")
    return model


def get_model(session: Session, settings: Settings, model_id: str, *, project_id: str) -> ModelOut:
    """One model of this project's catalog by id; another project's model is not found."""
    found = find_model(session, settings, model_id, project_id=project_id)
    if found is None:
        raise NotFoundError(f"model {model_id!r} not found")
    if found.trained is not None:
        return trained_out(found.trained)
    if found.source == ModelSource.CONFIGURED:
        return configured_out(model_id)
    return registered_out(REGISTERED_MODELS[model_id])


def registered_out(model: RegisteredModel) -> ModelOut:
    return ModelOut(id=model.name, source="registered", description=model.description)


def configured_out(name: str) -> ModelOut:
    return ModelOut(id=name, source="configured")


def trained_out(model: TrainedModel) -> ModelOut:
    # No `path`: a folder of the host is the operator's business, a model is named by its id.
    return ModelOut(
        id=model.id,
        source="trained",
        training_job_id=model.training_job_id,
        method=model.method,
        base_model=model.base_model,
        created_at=model.created_at,
    )
