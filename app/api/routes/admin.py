"""/v1/admin/keys: make, list and revoke API keys, with the ADMIN_TOKEN as the Bearer token."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import SessionDep, SettingsDep
from app.api.errors import BODY_ERRORS, V1_ERRORS
from app.kernel.errors import ForbiddenError, UnauthorizedError
from app.kernel.models import ApiKey, Project
from app.schemas.api_key import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut
from app.services import api_keys as key_service

_admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="The ADMIN_TOKEN setting."
)


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    if settings.admin_token is None:
        raise ForbiddenError("the admin API is off: set ADMIN_TOKEN to turn it on")
    if credentials is None:
        raise UnauthorizedError("missing admin token: send Authorization: Bearer <ADMIN_TOKEN>")
    if not secrets.compare_digest(
        credentials.credentials.encode(), settings.admin_token.get_secret_value().encode()
    ):
        raise ForbiddenError("wrong admin token")


router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=V1_ERRORS,
)


def key_out(key: ApiKey, project: str) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        project=project,
        project_id=key.project_id,
        name=key.name,
        prefix=key.prefix,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=BODY_ERRORS,
)
def create_key(request: ApiKeyCreate, session: SessionDep) -> ApiKeyCreated:
    made = key_service.create_key(session, project=request.project, name=request.name)
    out = ApiKeyCreated(**key_out(made.key, request.project).model_dump(), key=made.secret)
    session.commit()
    return out


@router.get("/keys", response_model=ApiKeyList)
def list_keys(session: SessionDep) -> ApiKeyList:
    return ApiKeyList(
        data=[key_out(key, project) for key, project in key_service.list_keys(session)]
    )


@router.post("/keys/{key_id}/revoke", response_model=ApiKeyOut)
def revoke_key(key_id: str, session: SessionDep) -> ApiKeyOut:
    key = key_service.revoke_key(session, key_id)
    project = session.get(Project, key.project_id)
    session.commit()
    return key_out(key, project.name if project else "")
