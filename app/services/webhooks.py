"""Webhook endpoints of a project and the log of their deliveries."""

from __future__ import annotations

import json
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.kernel.errors import ConflictError, NotFoundError
from app.kernel.models import Project
from app.kernel.models.webhook import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.kernel.webhook_urls import check_webhook_url
from app.kernel.webhooks import new_secret
from app.schemas.webhook import (
    AttemptOut,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
)
from app.services.pagination import newest_first_page


def create_webhook(
    session: Session,
    request: WebhookCreate,
    *,
    project_id: str,
    allow_private: bool,
    max_per_project: int,
) -> WebhookCreated:
    """A new endpoint and its secret (returned this once)."""
    check_webhook_url(request.url, allow_private=allow_private)
    # The project's row locked: two requests at once cannot both take the last place.
    session.execute(select(Project.id).where(Project.id == project_id).with_for_update())
    count = session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.project_id == project_id)
    )
    if count is not None and count >= max_per_project:
        raise ConflictError(
            f"webhooks: this project has {count} endpoints, the most it may have "
            f"(MAX_WEBHOOKS_PER_PROJECT={max_per_project}); delete one first"
        )
    endpoint = WebhookEndpoint(
        project_id=project_id, url=request.url, events=list(request.events), secret=new_secret()
    )
    session.add(endpoint)
    session.flush()
    return WebhookCreated(**webhook_out(endpoint).model_dump(), secret=endpoint.secret)


def get_webhook(session: Session, webhook_id: str, *, project_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, webhook_id)
    if endpoint is None or endpoint.project_id != project_id:
        raise NotFoundError(f"webhook {webhook_id!r} not found")
    return endpoint


def list_webhooks(
    session: Session, *, project_id: str, limit: int, after: str | None
) -> tuple[list[WebhookEndpoint], bool]:
    """Newest first; `after` is the id of the last endpoint of the previous page."""
    cursor = None if after is None else get_webhook(session, after, project_id=project_id)
    query = select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id)
    return newest_first_page(session, WebhookEndpoint, query, cursor=cursor, limit=limit)


def delete_webhook(session: Session, webhook_id: str, *, project_id: str) -> None:
    """The endpoint goes, and with it its deliveries (pending ones are not sent)."""
    session.delete(get_webhook(session, webhook_id, project_id=project_id))
    session.flush()


def list_deliveries(
    session: Session, webhook_id: str, *, project_id: str, limit: int, after: str | None
) -> tuple[list[DeliveryOut], bool]:
    """The endpoint's deliveries, newest first, each with its attempts."""
    endpoint = get_webhook(session, webhook_id, project_id=project_id)
    cursor = None
    if after is not None:
        cursor = session.get(WebhookDelivery, after)
        if cursor is None or cursor.endpoint_id != endpoint.id:
            raise NotFoundError(f"delivery {after!r} not found")
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    rows, has_more = newest_first_page(session, WebhookDelivery, query, cursor=cursor, limit=limit)
    attempts = attempts_of(session, [row.id for row in rows])
    return [delivery_out(row, attempts[row.id]) for row in rows], has_more


def attempts_of(session: Session, delivery_ids: list[str]) -> dict[str, list[WebhookAttempt]]:
    by_delivery: dict[str, list[WebhookAttempt]] = defaultdict(list)
    for attempt in session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    ):
        by_delivery[attempt.delivery_id].append(attempt)
    return by_delivery


def webhook_out(endpoint: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(
        id=endpoint.id, url=endpoint.url, events=endpoint.events, created_at=endpoint.created_at
    )


def delivery_out(row: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        event_type=row.event_type,
        status=row.status,  # type: ignore[arg-type]
        payload=json.loads(row.body),
        attempts=[
            AttemptOut(
                attempted_at=attempt.attempted_at,
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
            )
            for attempt in attempts
        ],
        next_attempt_at=row.next_attempt_at if row.status == DeliveryStatus.PENDING else None,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )
