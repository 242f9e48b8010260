"""An `Idempotency-Key` POST as a route sees it: replay what the first request made, or record
what this one makes. Without a key both steps do nothing."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.services import idempotency

REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class IdempotentPost:
    session: Session
    project_id: str
    scope: str
    key: str | None

    def replayed_id(self, request: BaseModel, response: Response) -> str | None:
        """The id of what the first request with this key made (marking the response as a
        replay), or None: then the key is claimed for this request."""
        if self.key is None:
            return None
        earlier = idempotency.claim(
            self.session,
            project_id=self.project_id,
            scope=self.scope,
            key=self.key,
            fingerprint=idempotency.request_hash(request),
        )
        if earlier is not None:
            response.headers[REPLAYED_HEADER] = "true"
        return earlier

    def record_created(self, resource_id: str) -> None:
        if self.key is not None:
            idempotency.record(
                self.session,
                project_id=self.project_id,
                scope=self.scope,
                key=self.key,
                resource_id=resource_id,
            )
