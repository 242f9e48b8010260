"""The models a project may name, and the one resolver every process uses to find them.

Lookup order, the same in the API, the worker and the trainer: the project's trained models,
the configured models (BASE_MODELS, the default policy and judge), the registered models (built
offline on first use). Nothing else is a model: a tenant never names a folder of the host or a
hub id (the operator offers those through BASE_MODELS)."""

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
    not_allowed_message,
)


class ModelSource(StrEnum):
    TRAINED = "trained"
    CONFIGURED = "configured"
    REGISTERED = "registered"


@dataclass(frozen=True)
class CatalogModel:
    """A model found in the catalog: where it comes from and where it lives."""

    name: str
    source: ModelSource
    location: str
    """A from_pretrained path or hub id; for a registered model, its folder (built on first use)."""
    trained: TrainedModel | None = None


def configured_models(settings: Settings) -> dict[str, str]:
    """The models the operator named, by name: BASE_MODELS, and the default policy and judge
    (DEFAULT_POLICY_MODEL, DEFAULT_JUDGE_MODEL), each loaded from its own name."""
    defaults = (settings.default_policy_model, settings.default_judge_model)
    named = {name: name for name in defaults if name not in REGISTERED_MODELS and name != "rule"}
    return {**named, **settings.base_models}


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
    configured = configured_models(settings)
    if name in configured:
        return CatalogModel(name, ModelSource.CONFIGURED, configured[name])
    if name in REGISTERED_MODELS:
        return CatalogModel(name, ModelSource.REGISTERED, str(settings.models_dir / name))
    return None


def model_location(model: CatalogModel, models_dir: Path) -> str:
    """What from_pretrained loads for a found model, building a registered one first."""
    if model.source == ModelSource.REGISTERED:
        return str(ensure_built(REGISTERED_MODELS[model.name], models_dir))
    return model.location


def resolve_model(session: Session, settings: Settings, name: str, *, project_id: str) -> str:
    """A from_pretrained path or hub id for `name` (ModelNotFoundError when it names nothing)."""
    found = find_model(session, settings, name, project_id=project_id)
    if found is None:
        raise ModelNotFoundError(f"model: {not_allowed_message(name)}")
    return model_location(found, settings.models_dir)
