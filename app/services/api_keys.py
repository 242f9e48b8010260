"""API keys: made at random, shown once, stored as SHA-256, looked up by that hash."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.db.base import utcnow
from app.kernel.errors import ForbiddenError, NotFoundError, UnauthorizedError
from app.kernel.models import ApiKey, Project

KEY_PREFIX = "fdp_"


def hash_key(key: str) -> str:
    # Keys are 256 random bits: a plain SHA-256 is as good as a slow hash here, and fast.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str
    """The key itself; nowhere else after this."""


def project_named(session: Session, name: str) -> Project:
    """The project of this name, made if it does not exist yet."""
    project = session.scalars(select(Project).where(Project.name == name)).first()
    if project is None:
        project = Project(name=name)
        session.add(project)
        session.flush()
    return project


def create_key(session: Session, *, project: str, name: str = "default") -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        project_id=project_named(session, project).id,
        name=name,
        prefix=secret[:12],
        key_hash=hash_key(secret),
    )
    session.add(key)
    session.flush()
    return NewKey(key=key, secret=secret)


def list_keys(session: Session) -> list[tuple[ApiKey, str]]:
    """Every key with its project's name, newest first."""
    rows = session.execute(
        select(ApiKey, Project.name)
        .join(Project, Project.id == ApiKey.project_id)
        .order_by(ApiKey.created_at.desc())
    )
    return [(key, project) for key, project in rows]


def revoke_key(session: Session, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"API key {key_id!r} not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    live_keys.pop(key.key_hash, None)  # this process refuses it at once; others within their TTL
    return key


def has_live_key(session: Session, *, project: str) -> bool:
    """Whether the project has a key that is not revoked."""
    found = session.scalar(
        select(ApiKey.id)
        .join(Project, Project.id == ApiKey.project_id)
        .where(Project.name == project, ApiKey.revoked_at.is_(None))
        .limit(1)
    )
    return found is not None


@dataclass(frozen=True)
class LiveKey:
    project_id: str
    checked_at: float
    """time.monotonic() when the database last said this key is live."""


live_keys: dict[str, LiveKey] = {}
"""Keys this process found live, by hash: a poll need not ask Postgres about its key each time."""
LIVE_KEYS_MAX = 10_000
KEY_BY_HASH = select(ApiKey.id, ApiKey.project_id, ApiKey.revoked_at).where(
    ApiKey.key_hash == bindparam("key_hash")
)


def cached_project(secret: str | None, *, cache_s: float) -> str | None:
    """The project of a key found live less than `cache_s` seconds ago, else None."""
    live = live_keys.get(hash_key(secret)) if secret else None
    if live is None or time.monotonic() - live.checked_at >= cache_s:
        return None
    return live.project_id


def project_of_key(session: Session, secret: str | None, *, cache_s: float = 0.0) -> str:
    """The project a request acts for: 401 without a known key, 403 for a revoked one.

    A key found live less than `cache_s` seconds ago is trusted without a query, so a key
    revoked elsewhere (the CLI, another API process) may work that much longer here."""
    project = cached_project(secret, cache_s=cache_s)
    if project is not None:
        return project
    if not secret:
        raise UnauthorizedError("missing API key: send Authorization: Bearer <key>")
    key_hash = hash_key(secret)
    key = session.execute(KEY_BY_HASH, {"key_hash": key_hash}).first()
    if key is None:
        raise UnauthorizedError("unknown API key")
    if key.revoked_at is not None:
        live_keys.pop(key_hash, None)
        raise ForbiddenError(f"API key {key.id} was revoked")
    if len(live_keys) >= LIVE_KEYS_MAX:
        live_keys.clear()  # a crude bound: forgetting only costs a query per key
    live_keys[key_hash] = LiveKey(project_id=key.project_id, checked_at=time.monotonic())
    return key.project_id


def issue_key(settings: Settings, *, project: str, name: str) -> str:
    """Make a key on DATABASE_URL's database (for the CLI, `findap up` and benchmarks)."""
    with ProcessContext.open(settings) as context, context.session_factory.begin() as session:
        return create_key(session, project=project, name=name).secret


def key_name(session: Session, secret: str) -> str:
    """The name of a (checked) key: who did something, as a review records it."""
    name = session.scalar(select(ApiKey.name).where(ApiKey.key_hash == hash_key(secret)))
    if name is None:
        raise UnauthorizedError("unknown API key")
    return name
