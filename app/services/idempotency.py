"""Idempotency-Key: a retried POST returns what the first one made and makes nothing new.

The key is claimed, in the request's own transaction, before anything is made: a concurrent
retry waits on that row, and once the first commits it finds the resource; if the first fails,
its claim rolls back with it and the retry starts afresh.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.kernel.errors import InvalidInputError
from app.kernel.models import IdempotencyKey

MAX_KEY_LENGTH = 255


def request_hash(request: BaseModel) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInputError(
            f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} printable characters, got {len(key)}"
        )


def claim(
    session: Session, *, project_id: str, scope: str, key: str, fingerprint: str
) -> str | None:
    """The id of what an earlier request with this key made, or None after claiming the key."""
    check_key(key)
    identity = (project_id, scope, key)
    row = session.get(IdempotencyKey, identity)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    IdempotencyKey(
                        project_id=project_id, scope=scope, key=key, request_hash=fingerprint
                    )
                )
            return None
        except IntegrityError:  # a concurrent request with this key committed first
            row = session.get(IdempotencyKey, identity, populate_existing=True)
            assert row is not None
    if row.request_hash != fingerprint:
        raise InvalidInputError(
            "Idempotency-Key: already used for a different request; use a new key for new work"
        )
    return row.resource_id


def record(session: Session, *, project_id: str, scope: str, key: str, resource_id: str) -> None:
    row = session.get(IdempotencyKey, (project_id, scope, key))
    assert row is not None, "claim() first"
    row.resource_id = resource_id
