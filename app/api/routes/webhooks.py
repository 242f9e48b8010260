"""/v1/webhooks: endpoints told when batches, evaluations and training jobs end (Standard
Webhooks), and the log of each one's deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.api.deps import ProjectDep, SessionDep, SettingsDep
from app.api.errors import BODY_ERRORS, V1_ERRORS, error_responses
from app.schemas.webhook import (
    DeliveryList,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookList,
    WebhookOut,
)
from app.services import webhooks as webhook_service

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=V1_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses={**BODY_ERRORS, **error_responses(409)},
)
def create_webhook(
    request: WebhookCreate, session: SessionDep, settings: SettingsDep, project: ProjectDep
) -> WebhookCreated:
    """Send these events to `url`, signed with the returned `secret` (shown only here)."""
    created = webhook_service.create_webhook(
        session,
        request,
        project_id=project,
        allow_private=settings.webhooks_allow_private_urls,
        max_per_project=settings.max_webhooks_per_project,
    )
    session.commit()
    return created


@router.get("", response_model=WebhookList)
def list_webhooks(
    session: SessionDep,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> WebhookList:
    """Endpoints, newest first; pass the last id of a page as `after` for the next one."""
    rows, has_more = webhook_service.list_webhooks(
        session, project_id=project, limit=limit, after=after
    )
    return WebhookList.of([webhook_service.webhook_out(row) for row in rows], has_more)


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(webhook_id: str, session: SessionDep, project: ProjectDep) -> WebhookOut:
    return webhook_service.webhook_out(
        webhook_service.get_webhook(session, webhook_id, project_id=project)
    )


@router.delete("/{webhook_id}", response_model=WebhookDeleted)
def delete_webhook(webhook_id: str, session: SessionDep, project: ProjectDep) -> WebhookDeleted:
    """The endpoint and its delivery log go; nothing more is sent to it."""
    webhook_service.delete_webhook(session, webhook_id, project_id=project)
    session.commit()
    return WebhookDeleted(id=webhook_id, deleted=True)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    webhook_id: str,
    session: SessionDep,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> DeliveryList:
    """What was sent to the endpoint, newest first: each event with every attempt (status
    code, error, duration) and, while pending, when it is tried next."""
    rows, has_more = webhook_service.list_deliveries(
        session, webhook_id, project_id=project, limit=limit, after=after
    )
    return DeliveryList.of(rows, has_more)
