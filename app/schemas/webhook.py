"""API shapes of webhooks: endpoints a project registers and the log of what was sent to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from app.kernel.batch_options import StrictModel
from app.schemas.page import ListPage

WebhookEvent = Literal[
    "batch.completed",
    "batch.failed",
    "batch.cancelled",
    "training_job.succeeded",
    "training_job.failed",
    "training_job.cancelled",
    "evaluation.completed",
    "evaluation.failed",
]


class WebhookCreate(StrictModel):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="Where events are POSTed: an http(s) URL of a public address (private, "
        "loopback and link-local ones only where the operator allows them).",
    )
    events: list[WebhookEvent] = Field(
        min_length=1, description="The event types to send (each at most once)."
    )

    @field_validator("events")
    @classmethod
    def _each_event_once(cls, events: list[str]) -> list[str]:
        return list(dict.fromkeys(events))


class WebhookOut(BaseModel):
    id: str
    object: Literal["webhook"] = "webhook"
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="whsec_<base64>: verify each delivery's webhook-signature with it. Shown "
        "only in this answer."
    )


class WebhookList(ListPage):
    data: list[WebhookOut]
    first_id: str | None
    last_id: str | None


class WebhookDeleted(BaseModel):
    id: str
    object: Literal["webhook"] = "webhook"
    deleted: bool


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's answer; null when none came.")
    error: str | None = Field(description="Why the attempt failed: no answer, or not a 2xx.")
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id header of every attempt.")
    object: Literal["webhook.delivery"] = "webhook.delivery"
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    payload: dict[str, Any] = Field(description="The body sent.")
    attempts: list[AttemptOut] = Field(description="Oldest first.")
    next_attempt_at: datetime | None = Field(description="When a pending one is tried next.")
    created_at: datetime
    finished_at: datetime | None


class DeliveryList(ListPage):
    data: list[DeliveryOut]
    first_id: str | None
    last_id: str | None
