"""API keys: made at random, shown once, stored as SHA-256, looked up by that hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import ForbiddenError, NotFoundError, UnauthorizedError
from app.db.base import utcnow
from app.models import ApiKey, Project

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


def project_of_key(session: Session, secret: str | None) -> str:
    """The project a request acts for: 401 without a known key, 403 for a revoked one."""
    if not secret:
        raise UnauthorizedError("missing API key: send Authorization: Bearer <key>")
    key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).first()
    if key is None:
        raise UnauthorizedError("unknown API key")
    if key.revoked_at is not None:
        raise ForbiddenError(f"API key {key.id} was revoked")
    return key.project_id


def issue_key(database_url: str | None, *, project: str, name: str) -> str:
    """Make a key on the database at this URL (for the CLI, `findap up` and benchmarks)."""
    from app.db.session import make_engine, make_session_factory

    if not database_url:
        raise RuntimeError("issue_key: no database URL")
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine).begin() as session:
            return create_key(session, project=project, name=name).secret
    finally:
        engine.dispose()
