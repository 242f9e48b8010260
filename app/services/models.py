"""Models the service knows: built-in (registered), configured base models, and trained ones."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import InvalidInputError, NotFoundError
from app.models import TrainedModel, TrainingJob
from app.schemas.training_job import ModelOut
from workers.engines.model_specs import (
    REGISTERED_MODELS,
    ModelNotFoundError,
    RegisteredModel,
    resolve_model_path,
)


def resolve_model_spec(session: Session, settings: Settings, spec: str) -> str:
    """A from_pretrained path (or hub id) for a model spec.

    In order: a trained model's id, a configured base model's name, then what
    `resolve_model_path` takes (a registered name, built on first use; a folder; a hub id).
    """
    trained = session.get(TrainedModel, spec)
    if trained is not None:
        return trained.path
    if spec in settings.base_models:
        return settings.base_models[spec]
    return resolve_model_path(spec, models_dir=settings.models_dir)


def check_model_spec(
    session: Session, settings: Settings, spec: str, *, field: str, project_id: str
) -> None:
    """Refuse (422, naming `field`) a spec no worker could load, without building anything.
    Another project's trained models do not exist for this one."""
    trained = session.get(TrainedModel, spec)
    if trained is not None:
        if trained.project_id == project_id:
            return
        raise InvalidInputError(f"{field}: model {spec!r} not found")
    if spec in settings.base_models:
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
    if spec in REGISTERED_MODELS:
        return
    try:
        resolve_model_path(spec, models_dir=settings.models_dir)
    except ModelNotFoundError as error:
        raise InvalidInputError(f"{field}: {error}".replace("model: ", "", 1)) from None


def list_models(session: Session, settings: Settings, *, project_id: str) -> list[ModelOut]:
    """Registered models, then configured base models, then the project's trained ones (newest
    first)."""
    trained = session.scalars(
        select(TrainedModel)
        .where(TrainedModel.project_id == project_id)
        .order_by(TrainedModel.created_at.desc(), TrainedModel.id)
    )
    return [
        *(registered_out(model, settings.models_dir) for model in REGISTERED_MODELS.values()),
        *(configured_out(name, path) for name, path in settings.base_models.items()),
        *(trained_out(model) for model in trained),
    ]


def get_model(session: Session, settings: Settings, model_id: str, *, project_id: str) -> ModelOut:
    """One model by id, looked up in the order `resolve_model_spec` uses."""
    trained = session.get(TrainedModel, model_id)
    if trained is not None and trained.project_id == project_id:
        return trained_out(trained)
    if model_id in settings.base_models:
        return configured_out(model_id, settings.base_models[model_id])
    if model_id in REGISTERED_MODELS:
        return registered_out(REGISTERED_MODELS[model_id], settings.models_dir)
    raise NotFoundError(f"model {model_id!r} not found")


def registered_out(model: RegisteredModel, models_dir: Path) -> ModelOut:
    # A registered model is built on first use: until then it has no folder.
    folder = models_dir / model.name
    return ModelOut(
        id=model.name,
        source="registered",
        description=model.description,
        path=str(folder) if folder.is_dir() else None,
    )


def configured_out(name: str, path: str) -> ModelOut:
    return ModelOut(id=name, source="configured", path=path)


def trained_out(model: TrainedModel) -> ModelOut:
    return ModelOut(
        id=model.id,
        source="trained",
        path=model.path,
        training_job_id=model.training_job_id,
        method=model.method,
        base_model=model.base_model,
        created_at=model.created_at,
    )
