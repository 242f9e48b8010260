"""/v1/models: the models a batch can sample from or judge with, and a training job can tune."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ProjectDep, SessionDep, SettingsDep
from app.api.errors import V1_ERRORS
from app.schemas.training_job import ModelList, ModelOut
from app.services import models as model_service

router = APIRouter(prefix="/v1/models", tags=["models"], responses=V1_ERRORS)


@router.get("", response_model=ModelList)
def list_models(
    session: SessionDep,
    settings: SettingsDep,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> ModelList:
    """Registered models, configured base models, then the project's trained models (newest
    first); pass the last id of a page as `after` for the next one."""
    data, has_more = model_service.list_models(
        session, settings, project_id=project, limit=limit, after=after
    )
    return ModelList.of(data, has_more)


@router.get("/{model_id:path}", response_model=ModelOut)
def get_model(
    model_id: str, session: SessionDep, settings: SettingsDep, project: ProjectDep
) -> ModelOut:
    # `:path` because configured names may hold a slash, like hub ids do.
    return model_service.get_model(session, settings, model_id, project_id=project)
