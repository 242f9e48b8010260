"""The models a project may name, and the one resolver every process uses to find them.

Lookup order, the same in the API, the worker and the trainer: the project's trained models,
the configured base models (BASE_MODELS), the registered models (built offline on first use),
then a local folder or a hub id."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy.orm import Session

from app.kernel.config import Settings
from app.kernel.models import TrainedModel
from app.kernel.registered_models import (
    REGISTERED_MODELS,
    ModelNotFoundError,
    ensure_built,
    folder_or_hub_id,
    not_registered_message,
)


class ModelSource(StrEnum):
    TRAINED = "trained"
    CONFIGURED = "configured"
    REGISTERED = "registered"
    PATH = "path"
    """A local folder or a hub id, named directly."""


@dataclass(frozen=True)
class CatalogModel:
    """A model found in the catalog: where it comes from and where it lives."""

    name: str
    source: ModelSource
    location: str
    """A from_pretrained path or hub id; for a registered model, its folder (built on first use)."""
    trained: TrainedModel | None = None


def find_model(
    session: Session, settings: Settings, name: str, *, project_id: str
) -> CatalogModel | None:
    """The model `name` means to this project, or None. Another project's trained model does
    not exist for this one. Nothing is built or loaded."""
    trained = session.get(TrainedModel, name)
    if trained is not None:
        if trained.project_id != project_id:
            return None
        return CatalogModel(name, ModelSource.TRAINED, trained.path, trained)
    if name in settings.base_models:
        return CatalogModel(name, ModelSource.CONFIGURED, settings.base_models[name])
    if name in REGISTERED_MODELS:
        return CatalogModel(name, ModelSource.REGISTERED, str(settings.models_dir / name))
    location = folder_or_hub_id(name)
    return None if location is None else CatalogModel(name, ModelSource.PATH, location)


def model_location(model: CatalogModel, models_dir: Path) -> str:
    """What from_pretrained loads for a found model, building a registered one first."""
    if model.source == ModelSource.REGISTERED:
        return str(ensure_built(REGISTERED_MODELS[model.name], models_dir))
    return model.location


def resolve_model(session: Session, settings: Settings, name: str, *, project_id: str) -> str:
    """A from_pretrained path or hub id for `name` (ModelNotFoundError when it names nothing)."""
    found = find_model(session, settings, name, project_id=project_id)
    if found is None:
        raise ModelNotFoundError(f"model: {not_registered_message(name)}")
    return model_location(found, settings.models_dir)
